// WorkerRuntime: what one raylight-worker hosts — at most one actor and its group memberships —
// and the execution of calls on it. Every operation is queued on the CallExecutor, so starts,
// stops, joins and calls are totally ordered and the actor is only ever touched by the executor
// thread. Knows nothing of gRPC (worker_service.cc adapts it).
//
//   (empty) --StartActor--> hosting actor A --StopActor/StartActor(B)--> (empty | hosting B)
//   hosting --JoinGroup(g, incarnation)--> member of g ... --LeaveGroup(g)--> not a member
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "raylight/v1/common.pb.h"
#include "raylight/v1/worker.pb.h"
#include "runtime/worker/actor_registry.h"
#include "runtime/worker/call_cancellation.h"
#include "runtime/worker/call_executor.h"

namespace raylight::worker {

struct WorkerIdentity {
  std::string worker_id;
  std::string node_id;
  std::string host;
  int gpu_index = -1;
  std::vector<std::string> file_roots;  // ActorEnvironment::file_roots
  std::string state_dir;                // ActorEnvironment::state_dir
};

// What the worker hosts, for re-registration after a head restart.
struct HostedState {
  bool has_actor = false;
  v1::ActorSpec actor;
  int64_t incarnation = 0;
  struct Group {
    std::string group_id;
    int64_t incarnation = 0;
    int rank = 0;
  };
  std::vector<Group> groups;
};

class WorkerRuntime {
 public:
  // Makes the store a group rendezvouses in: the head's KV store under `prefix`.
  using StoreFactory = std::function<std::unique_ptr<Store>(const std::string& prefix)>;
  using Done = absl::AnyInvocable<void(absl::Status)>;
  using CallDone = absl::AnyInvocable<void(absl::StatusOr<std::string>)>;
  using EventSink = std::function<void(std::string)>;
  // The call's cancellation, shared with the RPC that carries it; may be null (never).
  using Cancellation = std::shared_ptr<CallCancellation>;

  // `registry` and `executor` must outlive the runtime.
  WorkerRuntime(const ActorRegistry& registry, WorkerIdentity identity, StoreFactory stores,
                CallExecutor& executor);
  ~WorkerRuntime();

  // Replaces any hosted actor. Idempotent for the same actor id and incarnation.
  // Starts the actor and, when the request carries `join_group`, joins it in the same step; a
  // failed join stops the actor again so that the head sees one failed start.
  void StartActor(v1::StartActorRequest request, Done done);
  void StopActor(std::string actor_id, Done done);
  void JoinGroup(v1::GroupInfo group, int rank, Done done);
  void LeaveGroup(std::string group_id, int64_t incarnation, std::string reason, Done done);

  // Runs one call in the caller's order. `events` is invoked on the executor thread. A group call
  // whose RPC is cancelled before it starts is not run (its peers are being aborted); one
  // cancelled while it runs has its collectives aborted (Actor::AbortGroupCall) and ends ABORTED.
  // A stop request (StopCall) only sets CallContext::cancelled.
  void Call(const v1::CallHeader& header, std::string args, EventSink events, CallDone done,
            Cancellation cancellation = nullptr);

  // Worker.CancelCall: the calls of `caller_id` running or queued, and those arriving within
  // kStopMemory (the request may overtake the call), stop at their next step. Whether one was
  // running or queued. Any thread.
  bool StopCall(const std::string& caller_id);
  static constexpr absl::Duration kStopMemory = absl::Minutes(1);

  HostedState Snapshot() const;
  std::vector<std::string> ClassNames() const { return registry_.ClassNames(); }

 private:
  struct Membership;

  absl::Status StartActorNow(const v1::ActorSpec& spec, int64_t incarnation);
  absl::Status JoinGroupNow(const v1::GroupInfo& group, int rank);
  void StopActorNow(const std::string& reason);
  absl::StatusOr<std::string> CallNow(const v1::CallHeader& header, const std::string& args,
                                      const EventSink& events, const Cancellation& cancellation);
  void PublishSnapshot();

  const ActorRegistry& registry_;
  const WorkerIdentity identity_;
  StoreFactory stores_;
  CallExecutor& executor_;

  // Executor-thread state.
  std::unique_ptr<Actor> actor_;
  v1::ActorSpec actor_spec_;
  int64_t actor_incarnation_ = 0;
  absl::flat_hash_map<std::string, std::unique_ptr<Membership>> groups_;

  // Calls by caller id, for StopCall (any thread).
  void Track(const std::string& caller_id, const Cancellation& cancellation);
  void Untrack(const std::string& caller_id, const Cancellation& cancellation);
  absl::Mutex calls_mu_;
  absl::flat_hash_map<std::string, std::vector<Cancellation>> live_calls_
      ABSL_GUARDED_BY(calls_mu_);
  absl::flat_hash_map<std::string, absl::Time> stopped_callers_ ABSL_GUARDED_BY(calls_mu_);

  // A copy for other threads (registration, stats).
  mutable absl::Mutex snapshot_mu_;
  HostedState snapshot_ ABSL_GUARDED_BY(snapshot_mu_);
};

}  // namespace raylight::worker
