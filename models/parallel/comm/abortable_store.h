// AbortableStore: a view of a rendezvous Store whose waits end when an AbortSignal fires.
//
// A rank creating a communicator waits in the store for the others (Gloo's addresses, NCCL's
// unique id) for up to the communicator's timeout. When the run is aborted meanwhile (a peer will
// never arrive) the wait must end now: Get waits in slices and checks the signal between them.
#pragma once

#include <chrono>
#include <memory>

#include "models/parallel/comm/abort_signal.h"
#include "runtime/common/store.h"

namespace raylight::comm {

class AbortableStore final : public Store {
 public:
  // How long one slice of a wait lasts: the most an abort waits to be seen.
  static constexpr std::chrono::milliseconds kSlice{100};

  // `base` must outlive this object.
  AbortableStore(Store& base, std::shared_ptr<AbortSignal> signal)
      : base_(base), signal_(std::move(signal)) {}

  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key,
                                  std::chrono::milliseconds timeout) override;
  absl::StatusOr<bool> Check(absl::string_view key) override;
  absl::StatusOr<int64_t> Add(absl::string_view key, int64_t delta) override;
  absl::StatusOr<std::string> CompareSet(absl::string_view key, absl::string_view expected,
                                         absl::string_view desired) override;
  absl::StatusOr<bool> Delete(absl::string_view key) override;
  absl::StatusOr<int64_t> NumKeys() override;

 private:
  absl::Status Aborted() const;

  Store& base_;
  const std::shared_ptr<AbortSignal> signal_;
};

}  // namespace raylight::comm
