// CallExecutor: the worker's one execution thread. Tasks run one at a time; tasks of one caller
// run in that caller's sequence order even when the RPCs that carry them are dispatched by
// different gRPC threads and reach Submit out of order.
//
// Ordering contract: a caller numbers its calls 1, 2, 3, ... (per actor incarnation). A task
// whose predecessor has not arrived waits for it up to `gap_timeout` (a predecessor can vanish
// only if the caller cancelled it before sending), then runs anyway. Seq 0 is unordered.
//
// Thread-safe. Stop() finishes the running task; queued tasks are abandoned (their `abandon`
// callbacks run with the reason) so that every caller gets an answer.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace raylight::worker {

inline constexpr absl::Duration kDefaultGapTimeout = absl::Seconds(2);

class CallExecutor {
 public:
  struct Task {
    absl::AnyInvocable<void()> run;
    absl::AnyInvocable<void(absl::Status)> abandon;
  };

  explicit CallExecutor(absl::Duration gap_timeout = kDefaultGapTimeout);
  ~CallExecutor();  // Stop()s
  CallExecutor(const CallExecutor&) = delete;
  CallExecutor& operator=(const CallExecutor&) = delete;

  void Submit(absl::string_view caller_id, uint64_t seq, Task task);
  // Forgets every caller's sequence (the hosted actor changed: callers restart at 1).
  void ResetSequences();
  // Refuses new tasks and abandons queued ones once the running task returns; does not wait.
  void RequestStop();
  // RequestStop() and wait for the thread to finish.
  void Stop();
  // Tasks waiting or running.
  size_t pending() const;

 private:
  struct CallerQueue {
    uint64_t next_seq = 1;
    std::map<uint64_t, Task> waiting;  // arrived ahead of next_seq
    absl::Time gap_since = absl::InfiniteFuture();
  };

  void Loop();
  void PromoteLocked(CallerQueue& queue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Skips gaps older than gap_timeout_; returns the earliest time a gap will expire.
  absl::Time ExpireGapsLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration gap_timeout_;
  mutable absl::Mutex mu_;
  std::deque<Task> ready_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, CallerQueue> callers_ ABSL_GUARDED_BY(mu_);
  size_t waiting_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped whenever a task starts waiting behind a gap: the loop, asleep until the deadline it
  // knew of, wakes to arm the new gap's timeout.
  uint64_t waits_started_ ABSL_GUARDED_BY(mu_) = 0;
  bool running_task_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace raylight::worker
