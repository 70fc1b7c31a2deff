#include "actors/testing/group_collective.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "models/parallel/comm/gloo_communicator.h"
#include "models/parallel/comm/nccl_communicator.h"

namespace raylight::actors {

class GroupCollective::Impl {
 public:
  std::unique_ptr<comm::Communicator> communicator;
  int gpu_index = -1;
};

GroupCollective::GroupCollective(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GroupCollective::~GroupCollective() = default;

absl::StatusOr<std::unique_ptr<GroupCollective>> GroupCollective::Create(
    const worker::GroupContext& group, const worker::ActorEnvironment& environment,
    std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  // The store is already scoped to this group incarnation; the name keeps NCCL/Gloo keys apart
  // from anything else rendezvousing under it.
  const std::string name = absl::StrCat("test-actor-", group.incarnation);
  absl::StatusOr<std::unique_ptr<comm::Communicator>> communicator;
  if (group.backend == worker::CollectiveBackend::kNccl) {
    if (environment.gpu_index < 0) {
      return absl::FailedPreconditionError("backend: NCCL needs a GPU worker");
    }
    comm::NcclOptions options;
    options.timeout = timeout;
    options.group_name = name;
    communicator = comm::CreateNcclCommunicator(*group.store, group.rank, group.size,
                                                environment.gpu_index, options);
    impl->gpu_index = environment.gpu_index;
  } else {
    comm::GlooOptions options;
    options.timeout = timeout;
    options.hostname = environment.host;
    options.group_name = name;
    communicator = comm::CreateGlooCommunicator(*group.store, group.rank, group.size, options);
  }
  if (!communicator.ok()) return communicator.status();
  impl->communicator = *std::move(communicator);
  return std::unique_ptr<GroupCollective>(new GroupCollective(std::move(impl)));
}

absl::StatusOr<std::vector<float>> GroupCollective::AllReduceSum(std::vector<float> values) {
  at::Tensor tensor =
      at::from_blob(values.data(), {static_cast<int64_t>(values.size())}, at::kFloat).clone();
  if (impl_->gpu_index >= 0) tensor = tensor.to(at::Device(at::kCUDA, impl_->gpu_index));
  if (auto status = impl_->communicator->AllReduce(tensor); !status.ok()) return status;
  if (auto status = impl_->communicator->Synchronize(); !status.ok()) return status;
  tensor = tensor.cpu().contiguous();
  const float* data = tensor.data_ptr<float>();
  return std::vector<float>(data, data + tensor.numel());
}

std::string GroupCollective::backend() const {
  return std::string(impl_->communicator->backend_name());
}

}  // namespace raylight::actors
