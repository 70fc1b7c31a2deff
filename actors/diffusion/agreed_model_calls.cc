#include "actors/diffusion/agreed_model_calls.h"

#include <ATen/ATen.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "runtime/common/log.h"

namespace raylight::actors {
namespace {

// The agreement: [stop, replay, dtype, dims, sizes...].
constexpr int kMaxDims = 8;
constexpr int64_t kAgreementLength = 4 + kMaxDims;

}  // namespace

absl::Status AgreeToGoOn(comm::Communicator& world, bool decides, const CancelledFn& cancelled,
                         at::Device device, const std::string& job_id) {
  at::Tensor stop = at::zeros({1}, at::kLong);
  if (decides && cancelled && cancelled()) stop.fill_(1);
  if (world.size() > 1) {
    at::Tensor shared = stop.to(device);
    if (absl::Status status = world.Broadcast(shared, 0); !status.ok()) return status;
    stop = shared.cpu();
  }
  if (stop.item<int64_t>() != 0) {
    return absl::CancelledError(absl::StrCat("job ", job_id, " cancelled before it started"));
  }
  return absl::OkStatus();
}

AgreedModelCalls::AgreedModelCalls(comm::Communicator& world, bool decides, CancelledFn cancelled,
                                   ModelCallJournal* journal, at::Device device, std::string job_id)
    : world_(world),
      decides_(decides),
      cancelled_(std::move(cancelled)),
      journal_(journal),
      device_(device),
      job_id_(std::move(job_id)) {}

absl::StatusOr<at::Tensor> AgreedModelCalls::Call(
    const at::Tensor& x, double timestep, int branch,
    const std::function<absl::StatusOr<at::Tensor>()>& compute) {
  const int64_t index = calls_++;
  at::Tensor agreement = at::zeros({kAgreementLength}, at::kLong);
  std::optional<at::Tensor> recorded;
  if (decides_) {
    auto values = agreement.accessor<int64_t, 1>();
    if (cancelled_ && cancelled_()) values[0] = 1;
    if (journal_ != nullptr) recorded = journal_->Replay(index, x, timestep, branch);
    if (recorded.has_value() && recorded->dim() <= kMaxDims) {
      values[1] = 1;
      values[2] = static_cast<int64_t>(recorded->scalar_type());
      values[3] = recorded->dim();
      for (int64_t d = 0; d < recorded->dim(); ++d) values[4 + d] = recorded->size(d);
    }
  }
  if (world_.size() > 1) {
    at::Tensor shared = agreement.to(device_);
    if (absl::Status status = world_.Broadcast(shared, 0); !status.ok()) return status;
    agreement = shared.cpu();
  }
  const auto values = agreement.accessor<int64_t, 1>();
  if (values[0] != 0) return absl::CancelledError(absl::StrCat("job ", job_id_, " cancelled"));
  if (values[1] != 0) {
    at::Tensor out;
    if (decides_) {
      out = recorded->to(device_);
    } else {
      std::vector<int64_t> sizes(values[3]);
      for (int64_t d = 0; d < values[3]; ++d) sizes[d] = values[4 + d];
      out = at::empty(
          sizes, at::TensorOptions().dtype(static_cast<at::ScalarType>(values[2])).device(device_));
    }
    if (world_.size() > 1) {
      if (absl::Status status = world_.Broadcast(out, 0); !status.ok()) return status;
    }
    ++replayed_;
    return out;
  }
  absl::StatusOr<at::Tensor> out = compute();
  if (out.ok() && decides_ && journal_ != nullptr && !journal_failed_) {
    if (absl::Status kept = journal_->Append(index, x, timestep, branch, *out); !kept.ok()) {
      journal_failed_ = true;  // the run goes on; a later run recomputes past this point
      RL_LOG(WARNING) << "job " << job_id_ << ": model calls no longer journaled: " << kept;
    }
  }
  return out;
}

}  // namespace raylight::actors
