#include "actors/diffusion/root_broadcast.h"

#include <vector>

#include "runtime/common/status_macros.h"

namespace raylight::actors {

absl::StatusOr<at::Tensor> BroadcastFromRoot(comm::Communicator& world,
                                             const absl::StatusOr<at::Tensor>& made,
                                             at::Device device) {
  constexpr int kMaxDims = 6;
  const bool root = world.rank() == 0;
  if (world.size() == 1) {
    if (!made.ok()) return made.status();
    return made->defined() ? made->to(at::kCPU, at::kFloat) : at::Tensor();
  }
  // Whether it worked and its shape first: [ok, dims, size...].
  at::Tensor header = at::zeros({2 + kMaxDims}, at::TensorOptions().dtype(at::kLong));
  if (root && made.ok() && !made->defined()) {
    header[0] = 1;
    header[1] = -1;  // nothing made: an undefined tensor everywhere
  } else if (root && made.ok() && made->dim() <= kMaxDims) {
    header[0] = 1;
    header[1] = made->dim();
    for (int64_t d = 0; d < made->dim(); ++d) header[2 + d] = made->size(d);
  }
  at::Tensor sent_header = header.to(device);
  RL_RETURN_IF_ERROR(world.Broadcast(sent_header, 0));
  header = sent_header.cpu();
  if (header[0].item<int64_t>() == 0) {
    if (root && !made.ok()) return made.status();
    return absl::InternalError("rank 0 could not make what the group needed");
  }
  if (header[1].item<int64_t>() < 0) return at::Tensor();
  std::vector<int64_t> shape;
  for (int64_t d = 0; d < header[1].item<int64_t>(); ++d)
    shape.push_back(header[2 + d].item<int64_t>());
  at::Tensor values = root ? made->to(device, at::kFloat).contiguous()
                           : at::empty(shape, at::TensorOptions().dtype(at::kFloat).device(device));
  RL_RETURN_IF_ERROR(world.Broadcast(values, 0));
  return values.cpu();
}

}  // namespace raylight::actors
