#include "runtime/worker/call_executor.h"

#include <vector>

namespace raylight::worker {

CallExecutor::CallExecutor(absl::Duration gap_timeout)
    : gap_timeout_(gap_timeout), thread_([this] { Loop(); }) {}

CallExecutor::~CallExecutor() { Stop(); }

void CallExecutor::Submit(absl::string_view caller_id, uint64_t seq, Task task) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      if (seq == 0) {
        ready_.push_back(std::move(task));
        return;
      }
      CallerQueue& queue = callers_[caller_id];
      if (seq < queue.next_seq) {
        // Its successors already ran (its gap expired): run it now rather than never.
        ready_.push_back(std::move(task));
        return;
      }
      queue.waiting.emplace(seq, std::move(task));
      ++waiting_count_;
      ++waits_started_;
      PromoteLocked(queue);
      return;
    }
  }
  task.abandon(absl::UnavailableError("worker is shutting down"));
}

void CallExecutor::PromoteLocked(CallerQueue& queue) {
  while (!queue.waiting.empty() && queue.waiting.begin()->first == queue.next_seq) {
    ready_.push_back(std::move(queue.waiting.begin()->second));
    queue.waiting.erase(queue.waiting.begin());
    --waiting_count_;
    ++queue.next_seq;
  }
  if (queue.waiting.empty()) {
    queue.gap_since = absl::InfiniteFuture();
  } else if (queue.gap_since == absl::InfiniteFuture()) {
    queue.gap_since = absl::Now();
  }
}

absl::Time CallExecutor::ExpireGapsLocked(absl::Time now) {
  absl::Time earliest = absl::InfiniteFuture();
  for (auto& [caller, queue] : callers_) {
    if (queue.waiting.empty()) continue;
    if (now - queue.gap_since >= gap_timeout_) {
      queue.next_seq = queue.waiting.begin()->first;
      queue.gap_since = absl::InfiniteFuture();
      PromoteLocked(queue);
    }
    if (!queue.waiting.empty()) earliest = std::min(earliest, queue.gap_since + gap_timeout_);
  }
  return earliest;
}

void CallExecutor::ResetSequences() {
  absl::MutexLock lock(&mu_);
  for (auto& [caller, queue] : callers_) {
    for (auto& [seq, task] : queue.waiting) ready_.push_back(std::move(task));
  }
  callers_.clear();
  waiting_count_ = 0;
}

void CallExecutor::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    absl::Time wake = absl::InfiniteFuture();
    if (waiting_count_ > 0) wake = ExpireGapsLocked(absl::Now());
    if (stopping_) break;
    if (ready_.empty()) {
      const uint64_t waits_known = waits_started_;
      auto has_work = [this, waits_known]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !ready_.empty() || waits_started_ != waits_known;
      };
      mu_.AwaitWithDeadline(absl::Condition(&has_work), wake);
      continue;
    }
    Task task = std::move(ready_.front());
    ready_.pop_front();
    running_task_ = true;
    mu_.Unlock();
    task.run();
    task = Task{};  // release captured state outside the lock
    mu_.Lock();
    running_task_ = false;
  }
  // Stopping: everything still queued gets an answer.
  std::vector<Task> abandoned;
  for (Task& task : ready_) abandoned.push_back(std::move(task));
  ready_.clear();
  for (auto& [caller, queue] : callers_) {
    for (auto& [seq, task] : queue.waiting) abandoned.push_back(std::move(task));
  }
  callers_.clear();
  waiting_count_ = 0;
  mu_.Unlock();
  for (Task& task : abandoned) task.abandon(absl::UnavailableError("worker is shutting down"));
  mu_.Lock();
}

void CallExecutor::RequestStop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

void CallExecutor::Stop() {
  RequestStop();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

size_t CallExecutor::pending() const {
  absl::MutexLock lock(&mu_);
  return ready_.size() + waiting_count_ + (running_task_ ? 1 : 0);
}

}  // namespace raylight::worker
