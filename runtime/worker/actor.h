// The actor contract: what a class hosted by a raylight-worker implements. An actor is created
// by name from the ActorRegistry when the head places it on this worker, receives its calls one
// at a time in submission order on the worker's executor thread, and learns about the collective
// groups it joins. Actors never see gRPC: arguments and results are bytes (serialized protobuf
// messages; see actor_class.h for typed methods), events are bytes streamed to the caller.
//
// Threading: every method of Actor runs on the worker's one executor thread, never concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/common/store.h"

namespace raylight::worker {

// Where the actor lives: fixed for the actor's lifetime.
struct ActorEnvironment {
  std::string actor_id;
  std::string worker_id;
  std::string node_id;
  // The address peers reach this machine at (Gloo binds it; never assume loopback).
  std::string host;
  int gpu_index = -1;  // -1: a CPU worker
  int64_t incarnation = 0;
  // The directories this worker's actors may read files from (the node's --model-root); an
  // actor checks every path a call names against them itself, whoever sent the call.
  std::vector<std::string> file_roots;
  // The node's state directory (the actor's files that outlive the worker process, such as the
  // journals of running jobs, go under it); empty: none.
  std::string state_dir;
};

enum class CollectiveBackend { kGloo, kNccl };

// One membership of a collective group. `store` is the head's KV store under the group's
// incarnation prefix: communicators rendezvous there. Valid until OnGroupLeft for the group.
struct GroupContext {
  std::string group_id;
  std::string name;
  int64_t incarnation = 0;
  int rank = 0;
  int size = 1;
  CollectiveBackend backend = CollectiveBackend::kGloo;
  Store* store = nullptr;
};

// Per call: streams events to the caller (in order, before the result).
class CallContext {
 public:
  virtual ~CallContext() = default;
  virtual void Emit(std::string event) = 0;
  // The group this call was made through (SPMD group calls), or null for a plain call.
  virtual const GroupContext* group() const = 0;
  // True once the caller cancelled the call (or went away). Long calls poll it between steps and
  // return CANCELLED; what "between steps" means is the actor's business.
  virtual bool cancelled() const { return false; }
};

class Actor {
 public:
  virtual ~Actor() = default;

  // Runs `method` with serialized `args`; returns the serialized result. Unknown methods and bad
  // arguments are InvalidArgument/NotFound naming them.
  virtual absl::StatusOr<std::string> Call(absl::string_view method, absl::string_view args,
                                           CallContext& context) = 0;

  // This actor became `group.rank` of a group. The default keeps nothing.
  virtual absl::Status OnGroupJoined(const GroupContext& group) { return absl::OkStatus(); }
  // The group is gone (dissolved or removed): drop its communicators. `group.store` is about to
  // be destroyed.
  virtual void OnGroupLeft(const GroupContext& group) {}

  // Called on another thread while a call made through `group` runs (or is about to), when that
  // call's caller cancelled it or went away: the head does so when a rank of the group is lost,
  // so the call's collectives wait for a peer that will never come. Make them, and the
  // rendezvous, fail now (Communicator::Abort); the call then returns its error and the head
  // forms the group again. Must be quick and safe against the running call. The default does
  // nothing: the call ends at its next cancelled() check or collective timeout.
  virtual void AbortGroupCall(const GroupContext& group, const absl::Status& why) {}
};

// Creates an actor of one class from the init arguments of its ActorSpec.
using ActorFactory = absl::AnyInvocable<absl::StatusOr<std::unique_ptr<Actor>>(
    const ActorEnvironment& environment, absl::string_view init_args) const>;

}  // namespace raylight::worker
