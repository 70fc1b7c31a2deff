// AgreedModelCalls: what every rank of a sampling run does around each model call. The ranks make
// the same calls in the same order, so one broadcast from rank 0 per call keeps them in step:
//   - whether the run stops here (the caller cancelled: every rank stops at the same call, no
//     collective is left half-entered);
//   - whether the call's output comes from the journal of an earlier run of the job (rank 0 has
//     it and broadcasts it, with its shape and dtype) or is computed now (and rank 0 records it).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "actors/diffusion/diffusion_types.h"
#include "actors/diffusion/model_call_journal.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::actors {

// One agreement without a model call: whether the run goes on (rank 0's `cancelled`, broadcast).
// A cancel that came before the run started ends every rank at the same place, before anything
// is spent and with no collective half-entered.
absl::Status AgreeToGoOn(comm::Communicator& world, bool decides, const CancelledFn& cancelled,
                         at::Device device, const std::string& job_id);

class AgreedModelCalls {
 public:
  // `world` spans the run's ranks; `decides` is rank 0's. `cancelled` and `journal` are read on
  // rank 0 only (either may be empty / null). Everything must outlive this object.
  AgreedModelCalls(comm::Communicator& world, bool decides, CancelledFn cancelled,
                   ModelCallJournal* journal, at::Device device, std::string job_id);

  // The output of the next model call at (x, timestep, branch): replayed, or `compute()`d.
  absl::StatusOr<at::Tensor> Call(const at::Tensor& x, double timestep, int branch,
                                  const std::function<absl::StatusOr<at::Tensor>()>& compute);

  int64_t calls() const { return calls_; }
  int64_t replayed() const { return replayed_; }

 private:
  comm::Communicator& world_;
  const bool decides_;
  const CancelledFn cancelled_;
  ModelCallJournal* const journal_;
  const at::Device device_;
  const std::string job_id_;
  int64_t calls_ = 0;
  int64_t replayed_ = 0;
  bool journal_failed_ = false;
};

}  // namespace raylight::actors
