#include "models/parallel/comm/abort_signal.h"

#include <utility>

namespace raylight::comm {

void AbortSignal::Fire(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (fired_.load(std::memory_order_relaxed)) return;
  why_ = why.ok() ? absl::AbortedError("aborted") : std::move(why);
  fired_.store(true, std::memory_order_release);
  for (auto& [id, listener] : listeners_) listener(why_);
  listeners_.clear();
}

absl::Status AbortSignal::why() const {
  absl::MutexLock lock(&mu_);
  return why_;
}

int64_t AbortSignal::Subscribe(Listener listener) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_id_++;
  if (fired_.load(std::memory_order_relaxed)) {
    listener(why_);
  } else {
    listeners_.emplace(id, std::move(listener));
  }
  return id;
}

void AbortSignal::Unsubscribe(int64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

}  // namespace raylight::comm
