// AbortSignal: how a thread other than the one issuing a group's collectives makes them fail now.
//
// A collective blocks its thread until every rank has entered it. When a rank is lost (its
// process died or hung, or its caller cancelled the run before it started) the others would wait
// for the communicator's timeout: minutes, with the group's workers held. The worker's RPC thread
// fires the signal of the run instead; every communicator of the group (the world and the
// communicators split from it) and every rendezvous still waiting in the store fail with the
// signal's status within milliseconds, and the group is formed again afterwards (an aborted
// communicator is never used again, as with ncclCommAbort).
//
// Thread-safe. Torch-free: the worker runtime and the stores use it too.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace raylight::comm {

class AbortSignal {
 public:
  using Listener = std::function<void(const absl::Status& why)>;

  AbortSignal() = default;
  AbortSignal(const AbortSignal&) = delete;
  AbortSignal& operator=(const AbortSignal&) = delete;

  // The first call records `why` (made ABORTED when it is OK) and runs every listener; later
  // calls do nothing.
  void Fire(absl::Status why);
  bool fired() const { return fired_.load(std::memory_order_acquire); }
  // OK until fired.
  absl::Status why() const;

  // Runs `listener` once when the signal fires (at once, on this thread, when it has fired
  // already). Listeners run on the firing thread while the signal's lock is held: they must be
  // quick and must not subscribe or unsubscribe. Returns an id for Unsubscribe.
  int64_t Subscribe(Listener listener);
  // After it returns the listener is not running and will not run: its captures may go.
  void Unsubscribe(int64_t id);

 private:
  std::atomic<bool> fired_{false};
  mutable absl::Mutex mu_;
  absl::Status why_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace raylight::comm
