// ModelCallJournal: the model outputs of one job's sampling run, appended by rank 0 as they are
// made, so that the job's next run after a lost rank resumes where the lost run stopped instead
// of starting over (issue #23: a 30-minute job that loses a GPU at step 25 must not redo 25 steps).
//
// Why outputs and not the sampler's state: every sampler (ancestral noise, SDE Brownian trees,
// multistep history) is a deterministic function of the model outputs it is handed. Replaying the
// recorded outputs through the same sampler loop rebuilds its exact state, noise generators
// included, with no per-sampler code; the first call not recorded is computed for real on the
// same latent the lost run would have passed. The replayed run therefore equals the undisturbed
// run. Each record carries a digest of the model's input; a mismatch ends the replay (the run
// then computes from there: slower, never wrong).
//
// Files live under the node's state directory (`<dir>/<job id>.journal`): a worker restarted on
// the node, or any worker of the node that becomes the job's rank 0, finds them. Their header
// names the job's fingerprint (its SampleCall bytes); a journal of other inputs is discarded. An
// exclusive flock keeps a second run of the job (a stale one still winding down) out. Records
// are length-prefixed and checksummed: a tail cut by a crash is dropped on open.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace raylight::actors {

class ModelCallJournal {
 public:
  // Opens `<dir>/<job_id>.journal` for `fingerprint`, keeping the records a run of the same job
  // left (a journal of another fingerprint is started over), and removes journals in `dir` older
  // than `max_age`. `max_bytes` bounds the file: past it, calls are no longer recorded.
  // Unavailable when another process holds the journal.
  static absl::StatusOr<std::unique_ptr<ModelCallJournal>> Open(const std::string& dir,
                                                                const std::string& job_id,
                                                                uint64_t fingerprint,
                                                                int64_t max_bytes,
                                                                absl::Duration max_age);
  ~ModelCallJournal();
  ModelCallJournal(const ModelCallJournal&) = delete;
  ModelCallJournal& operator=(const ModelCallJournal&) = delete;

  // Model calls recorded (by earlier runs, then by this one).
  int64_t recorded() const { return static_cast<int64_t>(records_.size()); }
  // The output of call `index` when it is recorded for this input (x, timestep and branch);
  // nullopt otherwise, which ends the replay (later calls are not replayed either).
  std::optional<at::Tensor> Replay(int64_t index, const at::Tensor& x, double timestep, int branch);
  // Records call `index` (the next one) and its output. An error leaves the journal as it was
  // and stops further recording; the run goes on.
  absl::Status Append(int64_t index, const at::Tensor& x, double timestep, int branch,
                      const at::Tensor& output);
  // The job is over: the file goes.
  void Remove();

  // The stable digest of a model input (CRC-32 of its bytes, with its shape and the timestep).
  static uint64_t InputDigest(const at::Tensor& x, double timestep, int branch);

 private:
  struct Record {
    uint64_t input_digest = 0;
    int64_t offset = 0;  // of the output's bytes in the file
    int64_t bytes = 0;
    int8_t dtype = 0;
    std::vector<int64_t> sizes;
  };
  ModelCallJournal(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  absl::Status Load(uint64_t fingerprint);

  const std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;  // bytes of whole records
  int64_t max_bytes_ = 0;
  bool replaying_ = true;
  bool recording_ = true;
  std::vector<Record> records_;
};

}  // namespace raylight::actors
