// CallCancellation: one call's cancellation, shared by the RPC that carries the call (which
// learns that the caller cancelled it or went away) and the executor that runs it.
//
// Polling (cancelled()) is enough for calls that end at their next step. A group call blocked in a
// collective has no next step until every rank reaches it, which a lost rank never does: while
// the actor runs such a call the executor arms an abort (Actor::AbortGroupCall), and Cancel()
// runs it at once on the RPC's thread, so the call fails now instead of at the collective
// timeout.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace raylight::worker {

class CallCancellation {
 public:
  // `poll`, when given, is asked too (an RPC that can only be polled, not told).
  explicit CallCancellation(std::function<bool()> poll = nullptr) : poll_(std::move(poll)) {}
  CallCancellation(const CallCancellation&) = delete;
  CallCancellation& operator=(const CallCancellation&) = delete;

  // The caller cancelled the call's RPC: runs the armed abort, if any.
  void Cancel();
  // The caller asked the call to stop at its next step (Worker.CancelCall): nothing is aborted.
  void RequestStop() { stop_requested_.store(true, std::memory_order_release); }
  // Either of the two.
  bool cancelled() const;
  // The first only: the caller gave up on the call (its peers are being aborted).
  bool rpc_cancelled() const;

  // While armed, Cancel() runs `abort` (once, under this object's lock: it must be quick); it runs
  // now when the call is already cancelled. Disarm before what `abort` touches goes away.
  void Arm(std::function<void()> abort);
  void Disarm();
  // Whether an armed abort ran.
  bool aborted() const;

 private:
  const std::function<bool()> poll_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> stop_requested_{false};
  mutable absl::Mutex mu_;
  std::function<void()> abort_ ABSL_GUARDED_BY(mu_);
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace raylight::worker
