#include "runtime/worker/worker_runtime.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/common/log.h"

namespace raylight::worker {

struct WorkerRuntime::Membership {
  std::unique_ptr<Store> store;
  GroupContext context;
};

namespace {

class CallContextImpl final : public CallContext {
 public:
  CallContextImpl(const WorkerRuntime::EventSink& events, const GroupContext* group,
                  const WorkerRuntime::Cancellation& cancellation)
      : events_(events), group_(group), cancellation_(cancellation) {}
  void Emit(std::string event) override {
    if (events_) events_(std::move(event));
  }
  const GroupContext* group() const override { return group_; }
  bool cancelled() const override { return cancellation_ && cancellation_->cancelled(); }

 private:
  const WorkerRuntime::EventSink& events_;
  const GroupContext* group_;
  const WorkerRuntime::Cancellation& cancellation_;
};

CollectiveBackend ToBackend(v1::CollectiveBackend backend, int gpu_index) {
  switch (backend) {
    case v1::GLOO:
      return CollectiveBackend::kGloo;
    case v1::NCCL:
      return CollectiveBackend::kNccl;
    default:
      return gpu_index >= 0 ? CollectiveBackend::kNccl : CollectiveBackend::kGloo;
  }
}

}  // namespace

WorkerRuntime::WorkerRuntime(const ActorRegistry& registry, WorkerIdentity identity,
                             StoreFactory stores, CallExecutor& executor)
    : registry_(registry),
      identity_(std::move(identity)),
      stores_(std::move(stores)),
      executor_(executor) {}

WorkerRuntime::~WorkerRuntime() = default;

void WorkerRuntime::StartActor(v1::StartActorRequest request, Done done) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  executor_.Submit(
      "", 0,
      {[this, request = std::move(request), shared_done]() mutable {
         absl::Status status = StartActorNow(request.spec(), request.incarnation());
         if (status.ok() && request.has_join_group()) {
           status = JoinGroupNow(request.join_group(), request.join_rank());
           if (!status.ok())
             StopActorNow(absl::StrCat("joining its group failed: ", status.message()));
         }
         (*shared_done)(status);
       },
       [shared_done](absl::Status status) { (*shared_done)(status); }});
}

absl::Status WorkerRuntime::StartActorNow(const v1::ActorSpec& spec, int64_t incarnation) {
  if (actor_ != nullptr && actor_spec_.actor_id() == spec.actor_id() &&
      actor_incarnation_ == incarnation) {
    return absl::OkStatus();  // a retried start
  }
  // A class this worker cannot host is refused before anything changes: the hosted actor keeps
  // running (issue #23: an unknown class used to stop it, unknown to the head).
  const std::vector<std::string> classes = registry_.ClassNames();
  if (std::find(classes.begin(), classes.end(), spec.class_name()) == classes.end()) {
    return absl::NotFoundError(
        absl::StrCat("class_name: this worker hosts no class '", spec.class_name(), "'"));
  }
  if (actor_ != nullptr) StopActorNow(absl::StrCat("replaced by actor ", spec.actor_id()));
  ActorEnvironment environment{spec.actor_id(),      identity_.worker_id, identity_.node_id,
                               identity_.host,       identity_.gpu_index, incarnation,
                               identity_.file_roots, identity_.state_dir};
  auto actor = registry_.Create(spec.class_name(), environment, spec.init_args());
  if (!actor.ok()) return actor.status();
  actor_ = *std::move(actor);
  actor_spec_ = spec;
  actor_incarnation_ = incarnation;
  // Callers number their calls per actor incarnation.
  executor_.ResetSequences();
  RL_LOG(INFO) << "hosting actor " << spec.actor_id() << " (" << spec.class_name()
               << (spec.name().empty() ? "" : ", name " + spec.name()) << ", incarnation "
               << incarnation << ")";
  PublishSnapshot();
  return absl::OkStatus();
}

void WorkerRuntime::StopActor(std::string actor_id, Done done) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  executor_.Submit("", 0,
                   {[this, actor_id = std::move(actor_id), shared_done]() mutable {
                      if (actor_ == nullptr || actor_spec_.actor_id() != actor_id) {
                        (*shared_done)(absl::OkStatus());  // already gone: stopping is idempotent
                        return;
                      }
                      StopActorNow("stopped by the head");
                      (*shared_done)(absl::OkStatus());
                    },
                    [shared_done](absl::Status status) { (*shared_done)(status); }});
}

void WorkerRuntime::StopActorNow(const std::string& reason) {
  for (auto& [group_id, membership] : groups_) actor_->OnGroupLeft(membership->context);
  groups_.clear();
  RL_LOG(INFO) << "actor " << actor_spec_.actor_id() << " stopped: " << reason;
  actor_.reset();
  actor_spec_.Clear();
  actor_incarnation_ = 0;
  PublishSnapshot();
}

void WorkerRuntime::JoinGroup(v1::GroupInfo group, int rank, Done done) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  executor_.Submit("", 0,
                   {[this, group = std::move(group), rank, shared_done]() mutable {
                      (*shared_done)(JoinGroupNow(group, rank));
                    },
                    [shared_done](absl::Status status) { (*shared_done)(status); }});
}

absl::Status WorkerRuntime::JoinGroupNow(const v1::GroupInfo& group, int rank) {
  if (actor_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", identity_.worker_id, " hosts no actor to join group ", group.group_id()));
  }
  if (auto it = groups_.find(group.group_id()); it != groups_.end()) {
    if (it->second->context.incarnation == group.incarnation()) return absl::OkStatus();  // retried
    actor_->OnGroupLeft(it->second->context);  // an older incarnation
    groups_.erase(it);
  }
  auto membership = std::make_unique<Membership>();
  membership->store = stores_(group.store_prefix());
  GroupContext& context = membership->context;
  context.group_id = group.group_id();
  context.name = group.spec().name();
  context.incarnation = group.incarnation();
  context.rank = rank;
  context.size = group.members_size();
  context.backend = ToBackend(group.spec().backend(), identity_.gpu_index);
  context.store = membership->store.get();
  if (auto status = actor_->OnGroupJoined(context); !status.ok()) return status;
  RL_LOG(INFO) << "joined group " << context.name << " (" << context.group_id << ") incarnation "
               << context.incarnation << " as rank " << rank << "/" << context.size;
  groups_[group.group_id()] = std::move(membership);
  PublishSnapshot();
  return absl::OkStatus();
}

void WorkerRuntime::LeaveGroup(std::string group_id, int64_t incarnation, std::string reason,
                               Done done) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  executor_.Submit("", 0,
                   {[this, group_id = std::move(group_id), incarnation, reason = std::move(reason),
                     shared_done]() mutable {
                      auto it = groups_.find(group_id);
                      if (it != groups_.end() &&
                          (incarnation == 0 || it->second->context.incarnation <= incarnation)) {
                        if (actor_ != nullptr) actor_->OnGroupLeft(it->second->context);
                        RL_LOG(INFO) << "left group " << group_id << ": " << reason;
                        groups_.erase(it);
                        PublishSnapshot();
                      }
                      (*shared_done)(absl::OkStatus());
                    },
                    [shared_done](absl::Status status) { (*shared_done)(status); }});
}

void WorkerRuntime::Call(const v1::CallHeader& header, std::string args, EventSink events,
                         CallDone done, Cancellation cancellation) {
  if (cancellation == nullptr) cancellation = std::make_shared<CallCancellation>();
  Track(header.caller_id(), cancellation);
  auto shared_done = std::make_shared<CallDone>(std::move(done));
  executor_.Submit(
      header.caller_id(), header.seq(),
      {[this, header, args = std::move(args), events = std::move(events), cancellation,
        shared_done]() mutable {
         absl::StatusOr<std::string> result = CallNow(header, args, events, cancellation);
         Untrack(header.caller_id(), cancellation);
         (*shared_done)(std::move(result));
       },
       [this, caller = header.caller_id(), cancellation, shared_done](absl::Status status) {
         Untrack(caller, cancellation);
         (*shared_done)(status);
       }});
}

void WorkerRuntime::Track(const std::string& caller_id, const Cancellation& cancellation) {
  if (caller_id.empty()) return;
  absl::MutexLock lock(&calls_mu_);
  if (auto stopped = stopped_callers_.find(caller_id); stopped != stopped_callers_.end()) {
    cancellation->RequestStop();  // the stop overtook the call
  }
  live_calls_[caller_id].push_back(cancellation);
}

void WorkerRuntime::Untrack(const std::string& caller_id, const Cancellation& cancellation) {
  if (caller_id.empty()) return;
  absl::MutexLock lock(&calls_mu_);
  auto it = live_calls_.find(caller_id);
  if (it == live_calls_.end()) return;
  std::erase(it->second, cancellation);
  if (it->second.empty()) live_calls_.erase(it);
}

bool WorkerRuntime::StopCall(const std::string& caller_id) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&calls_mu_);
  // Bounded: remembered for kStopMemory, at most kMaxRemembered at a time.
  constexpr size_t kMaxRemembered = 4096;
  for (auto entry = stopped_callers_.begin(); entry != stopped_callers_.end();) {
    if (now - entry->second > kStopMemory) {
      stopped_callers_.erase(entry++);
    } else {
      ++entry;
    }
  }
  if (stopped_callers_.size() < kMaxRemembered) stopped_callers_[caller_id] = now;
  auto it = live_calls_.find(caller_id);
  if (it == live_calls_.end()) return false;
  for (const Cancellation& cancellation : it->second) cancellation->RequestStop();
  return true;
}

absl::StatusOr<std::string> WorkerRuntime::CallNow(const v1::CallHeader& header,
                                                   const std::string& args, const EventSink& events,
                                                   const Cancellation& cancellation) {
  if (actor_ == nullptr || actor_spec_.actor_id() != header.actor_id()) {
    // The caller's view of where the actor lives is stale: it re-resolves through the head.
    return absl::FailedPreconditionError(absl::StrCat("actor_id: worker ", identity_.worker_id,
                                                      " does not host actor ", header.actor_id(),
                                                      " (stale address)"));
  }
  const GroupContext* group = nullptr;
  if (!header.group_id().empty()) {
    auto it = groups_.find(header.group_id());
    if (it == groups_.end() || it->second->context.incarnation != header.group_incarnation()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "group_id: actor ", header.actor_id(), " is not a member of group ", header.group_id(),
          " incarnation ", header.group_incarnation(), " (dissolved or re-formed)"));
    }
    group = &it->second->context;
  }
  CallContextImpl context(events, group, cancellation);
  if (group == nullptr) return actor_->Call(header.method(), args, context);
  // A group call whose caller gave up before it started: its peers are being aborted, and
  // starting it would only wait for them. (A stop request runs it: the ranks agree to stop.)
  if (cancellation->rpc_cancelled()) {
    return absl::CancelledError(absl::StrCat("call ", header.caller_id(),
                                             " was cancelled by its caller before it started"));
  }
  cancellation->Arm([actor = actor_.get(), group, caller = header.caller_id()] {
    actor->AbortGroupCall(
        *group, absl::AbortedError(absl::StrCat("call ", caller, " cancelled by its caller")));
  });
  absl::StatusOr<std::string> result = actor_->Call(header.method(), args, context);
  cancellation->Disarm();
  if (cancellation->aborted()) {
    RL_LOG(WARNING) << "group call " << header.caller_id() << " on group " << group->name
                    << " aborted by its caller: "
                    << (result.ok() ? std::string("finished") : result.status().ToString());
    if (!result.ok()) {
      return absl::AbortedError(
          absl::StrCat("call ", header.caller_id(),
                       " aborted (its caller cancelled it): ", result.status().message()));
    }
  }
  return result;
}

void WorkerRuntime::PublishSnapshot() {
  HostedState state;
  state.has_actor = actor_ != nullptr;
  if (state.has_actor) {
    state.actor = actor_spec_;
    state.incarnation = actor_incarnation_;
  }
  for (const auto& [group_id, membership] : groups_) {
    state.groups.push_back({group_id, membership->context.incarnation, membership->context.rank});
  }
  absl::MutexLock lock(&snapshot_mu_);
  snapshot_ = std::move(state);
}

HostedState WorkerRuntime::Snapshot() const {
  absl::MutexLock lock(&snapshot_mu_);
  return snapshot_;
}

}  // namespace raylight::worker
