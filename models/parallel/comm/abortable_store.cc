#include "models/parallel/comm/abortable_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace raylight::comm {

absl::Status AbortableStore::Aborted() const {
  const absl::Status why = signal_->why();
  return absl::AbortedError(absl::StrCat("rendezvous aborted: ", why.message()));
}

absl::Status AbortableStore::Set(absl::string_view key, absl::string_view value) {
  if (signal_->fired()) return Aborted();
  return base_.Set(key, value);
}

absl::StatusOr<std::string> AbortableStore::Get(absl::string_view key,
                                                std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (signal_->fired()) return Aborted();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const auto slice = std::clamp(left, std::chrono::milliseconds(0), kSlice);
    absl::StatusOr<std::string> value = base_.Get(key, slice);
    // A slice that ran out is not the caller's timeout unless the whole wait has.
    if (value.ok() || value.status().code() != absl::StatusCode::kDeadlineExceeded ||
        std::chrono::steady_clock::now() >= deadline) {
      return value;
    }
  }
}

absl::StatusOr<bool> AbortableStore::Check(absl::string_view key) {
  if (signal_->fired()) return Aborted();
  return base_.Check(key);
}

absl::StatusOr<int64_t> AbortableStore::Add(absl::string_view key, int64_t delta) {
  if (signal_->fired()) return Aborted();
  return base_.Add(key, delta);
}

absl::StatusOr<std::string> AbortableStore::CompareSet(absl::string_view key,
                                                       absl::string_view expected,
                                                       absl::string_view desired) {
  if (signal_->fired()) return Aborted();
  return base_.CompareSet(key, expected, desired);
}

absl::StatusOr<bool> AbortableStore::Delete(absl::string_view key) {
  if (signal_->fired()) return Aborted();
  return base_.Delete(key);
}

absl::StatusOr<int64_t> AbortableStore::NumKeys() {
  if (signal_->fired()) return Aborted();
  return base_.NumKeys();
}

}  // namespace raylight::comm
