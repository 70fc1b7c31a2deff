#include "runtime/worker/call_cancellation.h"

#include <utility>

namespace raylight::worker {

void CallCancellation::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  absl::MutexLock lock(&mu_);
  if (abort_ == nullptr) return;
  std::function<void()> abort = std::move(abort_);
  abort_ = nullptr;
  aborted_ = true;
  abort();
}

bool CallCancellation::cancelled() const {
  return cancelled_.load(std::memory_order_acquire) ||
         stop_requested_.load(std::memory_order_acquire) || (poll_ && poll_());
}

bool CallCancellation::rpc_cancelled() const {
  return cancelled_.load(std::memory_order_acquire) || (poll_ && poll_());
}

void CallCancellation::Arm(std::function<void()> abort) {
  absl::MutexLock lock(&mu_);
  if (cancelled_.load(std::memory_order_acquire)) {
    aborted_ = true;
    abort();
    return;
  }
  abort_ = std::move(abort);
}

void CallCancellation::Disarm() {
  absl::MutexLock lock(&mu_);
  abort_ = nullptr;
}

bool CallCancellation::aborted() const {
  absl::MutexLock lock(&mu_);
  return aborted_;
}

}  // namespace raylight::worker
