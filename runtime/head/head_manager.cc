#include "runtime/head/head_manager.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/common/ids.h"
#include "runtime/common/log.h"
#include "runtime/head/placement.h"

namespace raylight::head {
namespace {

constexpr auto kTick = std::chrono::milliseconds(100);
constexpr int kMaxGroupSize = 1024;
constexpr int64_t kMaxWaitMs = 10 * 60 * 1000;

int64_t UnixMillis(absl::Time time) { return absl::ToUnixMillis(time); }

bool WantsGpu(const v1::Resources& resources) { return resources.gpu() > 0; }

v1::WorkerKind KindFor(const v1::Resources& resources) {
  return WantsGpu(resources) ? v1::WORKER_KIND_GPU : v1::WORKER_KIND_CPU;
}

absl::Status CheckWait(int64_t ms, absl::string_view field) {
  if (ms < 0 || ms > kMaxWaitMs) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", ms, " is outside [0, ", kMaxWaitMs, "]"));
  }
  return absl::OkStatus();
}

absl::Status GroupNotFound(const std::string& group_id, const std::string& name) {
  return absl::NotFoundError(
      absl::StrCat("group_id/name: no group '", group_id.empty() ? name : group_id, "'"));
}

bool SameGroupSpec(const v1::GroupSpec& a, const v1::GroupSpec& b) {
  return a.size() == b.size() && a.actor_class() == b.actor_class() &&
         a.resources().gpu() == b.resources().gpu() && a.resources().cpu() == b.resources().cpu() &&
         a.backend() == b.backend();
}

}  // namespace

HeadManager::HeadManager(const HeadConfig& config, boost::asio::io_context& io, StateDb& db,
                         WorkerClient& workers, std::string head_address)
    : config_(config),
      io_(io),
      db_(db),
      workers_(workers),
      head_address_(std::move(head_address)),
      start_time_(absl::Now()),
      timer_(io) {}

HeadManager::~HeadManager() = default;

absl::Status HeadManager::Start() {
  auto actors = db_.LoadActors();
  if (!actors.ok()) return actors.status();
  auto groups = db_.LoadGroups();
  if (!groups.ok()) return groups.status();
  const absl::Time now = absl::Now();
  // Workers get one full deadline to re-register before their actors are restarted elsewhere.
  reclaim_deadline_ = now + config_.deadline + config_.heartbeat_period;
  int reclaiming = 0;
  for (v1::ActorInfo& info : *actors) {
    Actor actor;
    actor.info = std::move(info);
    if (actor.info.state() != v1::DEAD) {
      actor.preferred_node = actor.info.node_id();
      actor.info.set_state(v1::RESTARTING);
      actor.info.set_death_reason("head restarted: waiting for its worker to re-register");
      actor.info.clear_address();
      actor.awaiting_reclaim = true;
      ++reclaiming;
      if (!actor.info.spec().name().empty()) {
        actor_names_[actor.info.spec().name()] = actor.info.spec().actor_id();
      }
    }
    actors_[actor.info.spec().actor_id()] = std::move(actor);
  }
  for (v1::GroupInfo& info : *groups) {
    Group group;
    group.info = std::move(info);
    if (group.info.state() == v1::GROUP_READY) {
      group.info.set_state(v1::GROUP_FORMING);
      group.awaiting_reclaim = true;
    } else if (group.info.state() == v1::GROUP_FORMING) {
      group.info.set_state(v1::GROUP_DISSOLVED);
      group.info.set_dissolved_reason("head restarted while the group was forming");
    }
    if (!group.info.spec().name().empty()) {
      group_names_[group.info.spec().name()] = group.info.group_id();
    }
    groups_[group.info.group_id()] = std::move(group);
  }
  if (reclaiming > 0) {
    RL_LOG(INFO) << "recovered " << reclaiming << " live actors and " << groups_.size()
                 << " groups from the state database; waiting for their workers";
  }
  ArmTimer();
  return absl::OkStatus();
}

void HeadManager::Stop() {
  stopped_ = true;
  timer_.cancel();
}

// ---- timers and health ----------------------------------------------------------------------

void HeadManager::ArmTimer() {
  timer_.expires_after(kTick);
  timer_.async_wait([this](const boost::system::error_code& error) {
    if (error == boost::asio::error::operation_aborted || stopped_) return;
    OnTick();
    ArmTimer();
  });
}

void HeadManager::OnTick() {
  const absl::Time now = absl::Now();
  CheckHealth(now);
  if (reclaim_deadline_ != absl::InfinitePast() && now >= reclaim_deadline_) {
    reclaim_deadline_ = absl::InfinitePast();
    for (auto& [id, actor] : actors_) {
      if (!actor.awaiting_reclaim) continue;
      actor.awaiting_reclaim = false;
      RL_LOG(WARNING) << "actor " << id << " was not reclaimed after the head restart; restarting";
      ActorLost(actor, "its worker did not re-register after the head restarted",
                /*count_restart=*/true);
    }
    for (auto& [id, group] : groups_) {
      if (!group.awaiting_reclaim) continue;
      group.awaiting_reclaim = false;
      DissolveGroup(group, "not every rank re-registered after the head restarted");
    }
  }
  Schedule();
  ExpireWaiters(now);
}

void HeadManager::CheckHealth(absl::Time now) {
  for (auto& [id, node] : nodes_) {
    if (node.info.alive() && now - node.last_seen > config_.deadline) {
      MarkNodeDead(node,
                   absl::StrCat("no heartbeat for ", absl::FormatDuration(now - node.last_seen)));
    }
  }
  for (auto& [id, worker] : workers_by_id_) {
    if (worker.info.alive() && now - worker.last_seen > config_.deadline) {
      MarkWorkerDead(
          worker, absl::StrCat("no heartbeat for ", absl::FormatDuration(now - worker.last_seen)));
    }
  }
  ForgetDeadNodes(now);
}

void HeadManager::ForgetDeadNodes(absl::Time now) {
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    const Node& node = it->second;
    if (node.info.alive() || now - node.died < config_.dead_node_retention) {
      ++it;
      continue;
    }
    RL_LOG(INFO) << "forgetting node " << node.info.node_id() << ", dead since "
                 << absl::FormatTime(node.died);
    // Its workers were marked dead with it (their actors moved on); a worker that is alive again
    // belongs to a node that re-registered under this id and is kept.
    for (auto worker = workers_by_id_.begin(); worker != workers_by_id_.end();) {
      const bool gone = worker->second.info.node_id() == node.info.node_id() &&
                        !worker->second.info.alive() && worker->second.info.actor_id().empty();
      worker = gone ? workers_by_id_.erase(worker) : std::next(worker);
    }
    it = nodes_.erase(it);
  }
}

void HeadManager::MarkNodeDead(Node& node, const std::string& reason) {
  RL_LOG(WARNING) << "node " << node.info.node_id() << " is dead: " << reason;
  node.info.set_alive(false);
  node.info.set_death_reason(reason);
  node.died = absl::Now();
  for (auto& [id, worker] : workers_by_id_) {
    if (worker.info.node_id() == node.info.node_id() && worker.info.alive()) {
      MarkWorkerDead(worker, absl::StrCat("node ", node.info.node_id(), " died: ", reason));
    }
  }
}

void HeadManager::MarkWorkerDead(Worker& worker, const std::string& reason) {
  if (!worker.info.alive()) return;
  RL_LOG(WARNING) << "worker " << worker.info.worker_id() << " is dead: " << reason;
  worker.info.set_alive(false);
  worker.info.set_death_reason(reason);
  std::string actor_id = worker.info.actor_id();
  worker.info.clear_actor_id();
  if (actor_id.empty()) return;
  if (auto it = actors_.find(actor_id); it != actors_.end()) {
    Actor& actor = it->second;
    if (actor.info.worker_id() == worker.info.worker_id() &&
        (actor.info.state() == v1::ALIVE || actor.start_in_flight)) {
      actor.start_in_flight = false;
      ActorLost(actor, absl::StrCat("worker ", worker.info.worker_id(), " died: ", reason),
                /*count_restart=*/true);
    }
  }
}

void HeadManager::ExpireWaiters(absl::Time now) {
  for (auto& [id, actor] : actors_) NotifyActorWaiters(actor, /*expired_only=*/true, now);
  for (auto& [id, group] : groups_) {
    if (group.info.state() == v1::GROUP_FORMING && !group.awaiting_reclaim &&
        now >= group.form_deadline) {
      FailGroupWaiters(group, absl::DeadlineExceededError(absl::StrCat(
                                  "group ", group.info.spec().name(),
                                  " did not form before its deadline (members not yet alive)")));
      DissolveGroup(group, "formation timed out");
    }
    auto& waiters = group.waiters;
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (now >= it->deadline) {
        it->reply(absl::DeadlineExceededError(
            absl::StrCat("group ", group.info.spec().name(), " is not ready yet (",
                         v1::GroupState_Name(group.info.state()), ")")));
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
  }
  CheckClusterWaiters(now);
}

// ---- nodes and workers ----------------------------------------------------------------------

void HeadManager::RegisterNode(const v1::RegisterNodeRequest& request,
                               Reply<v1::RegisterNodeResponse> reply) {
  const v1::NodeInfo& info = request.node();
  if (info.node_id().empty()) {
    reply(absl::InvalidArgumentError("node.node_id: must not be empty"));
    return;
  }
  Node& node = nodes_[info.node_id()];
  const bool fresh = !node.info.alive();
  node.info = info;
  node.info.set_alive(true);
  node.info.clear_death_reason();
  node.died = absl::InfiniteFuture();
  node.last_seen = absl::Now();
  node.info.set_last_heartbeat_unix_ms(UnixMillis(node.last_seen));
  if (fresh) {
    RL_LOG(INFO) << "node " << info.node_id() << " registered: host " << info.host() << ", "
                 << info.gpus_size() << " GPUs, " << info.cpu_slots() << " CPU slots";
  }
  v1::RegisterNodeResponse response;
  response.set_heartbeat_period_ms(absl::ToInt64Milliseconds(config_.heartbeat_period));
  response.set_deadline_ms(absl::ToInt64Milliseconds(config_.deadline));
  reply(response);
  CheckClusterWaiters(absl::Now());
}

void HeadManager::NodeHeartbeat(const v1::NodeHeartbeatRequest& request,
                                Reply<v1::HeartbeatResponse> reply) {
  v1::HeartbeatResponse response;
  auto it = nodes_.find(request.node_id());
  if (it != nodes_.end() && it->second.info.alive()) {
    it->second.last_seen = absl::Now();
    it->second.info.set_last_heartbeat_unix_ms(UnixMillis(it->second.last_seen));
    response.set_known(true);
  }
  reply(response);
}

void HeadManager::RegisterWorker(const v1::RegisterWorkerRequest& request,
                                 Reply<v1::RegisterWorkerResponse> reply) {
  const v1::WorkerInfo& info = request.worker();
  if (info.worker_id().empty() || info.address().empty()) {
    reply(absl::InvalidArgumentError("worker.worker_id and worker.address: must be set"));
    return;
  }
  auto existing = workers_by_id_.find(info.worker_id());
  if (existing != workers_by_id_.end() && existing->second.info.alive() &&
      existing->second.info.instance_id() != info.instance_id()) {
    MarkWorkerDead(existing->second, "replaced by a new process of the same worker");
  }
  Worker& worker = workers_by_id_[info.worker_id()];
  const bool same_instance = worker.info.instance_id() == info.instance_id() && worker.info.alive();
  const std::string placed_actor = same_instance ? worker.info.actor_id() : std::string();
  worker.info = info;
  worker.info.set_alive(true);
  worker.info.clear_death_reason();
  worker.info.set_actor_id(placed_actor);
  worker.last_seen = absl::Now();

  v1::RegisterWorkerResponse response;
  response.set_heartbeat_period_ms(absl::ToInt64Milliseconds(config_.heartbeat_period));
  response.set_deadline_ms(absl::ToInt64Milliseconds(config_.deadline));
  if (request.has_hosted_actor() && !request.hosted_actor().actor_id().empty()) {
    const std::string& actor_id = request.hosted_actor().actor_id();
    auto it = actors_.find(actor_id);
    if (it != actors_.end() && it->second.info.state() != v1::DEAD &&
        it->second.info.incarnation() == request.hosted_actor_incarnation() &&
        (it->second.awaiting_reclaim || it->second.info.worker_id() == info.worker_id())) {
      Actor& actor = it->second;
      actor.awaiting_reclaim = false;
      worker.info.set_actor_id(actor_id);
      ActorAlive(actor, worker);
      response.set_keep_hosted_actor(true);
      RL_LOG(INFO) << "adopted actor " << actor_id << " on re-registered worker "
                   << info.worker_id();
      for (const v1::HostedGroup& hosted : request.hosted_groups()) {
        auto group_it = groups_.find(hosted.group_id());
        if (group_it == groups_.end()) continue;
        Group& group = group_it->second;
        if (group.awaiting_reclaim && group.info.incarnation() == hosted.incarnation()) {
          GroupProgress(group);
        }
      }
    }
  }
  RL_LOG(INFO) << "worker " << info.worker_id() << " registered at " << info.address() << " (pid "
               << info.pid() << ")";
  reply(response);
  Schedule();
  CheckClusterWaiters(absl::Now());
}

void HeadManager::WorkerHeartbeat(const v1::WorkerHeartbeatRequest& request,
                                  Reply<v1::HeartbeatResponse> reply) {
  v1::HeartbeatResponse response;
  auto it = workers_by_id_.find(request.worker_id());
  if (it != workers_by_id_.end() && it->second.info.alive() &&
      it->second.info.instance_id() == request.instance_id()) {
    Worker& worker = it->second;
    worker.last_seen = absl::Now();
    worker.info.set_host_rss_bytes(request.host_rss_bytes());
    worker.info.set_device_used_bytes(request.device_used_bytes());
    worker.info.set_device_total_bytes(request.device_total_bytes());
    response.set_known(true);
  }
  reply(response);
}

void HeadManager::ReportWorkerExit(const v1::ReportWorkerExitRequest& request,
                                   Reply<v1::ReportWorkerExitResponse> reply) {
  auto it = workers_by_id_.find(request.worker_id());
  if (it != workers_by_id_.end() && it->second.info.instance_id() == request.instance_id()) {
    MarkWorkerDead(it->second, request.reason());
  }
  reply(v1::ReportWorkerExitResponse());
  Schedule();
}

// ---- actors ---------------------------------------------------------------------------------

std::string HeadManager::KnownClasses() const {
  std::set<std::string> classes;
  for (const auto& [id, worker] : workers_by_id_) {
    for (const std::string& name : worker.info.actor_classes()) classes.insert(name);
  }
  return classes.empty() ? "none: no worker has registered" : absl::StrJoin(classes, ", ");
}

bool HeadManager::ClassKnown(const std::string& class_name) const {
  for (const auto& [id, worker] : workers_by_id_) {
    for (const std::string& name : worker.info.actor_classes()) {
      if (name == class_name) return true;
    }
  }
  return false;
}

absl::Status HeadManager::ValidateResources(const v1::Resources& resources) const {
  const bool gpu = resources.gpu() == 1 && resources.cpu() == 0;
  const bool cpu = resources.cpu() == 1 && resources.gpu() == 0;
  if (!gpu && !cpu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resources: an actor takes one worker: {gpu: 1} or {cpu: 1}, not {gpu: ", resources.gpu(),
        ", cpu: ", resources.cpu(), "}"));
  }
  return absl::OkStatus();
}

HeadManager::Actor* HeadManager::FindActor(const std::string& actor_id, const std::string& name) {
  std::string id = actor_id;
  if (id.empty() && !name.empty()) {
    auto it = actor_names_.find(name);
    if (it == actor_names_.end()) return nullptr;
    id = it->second;
  }
  auto it = actors_.find(id);
  return it == actors_.end() ? nullptr : &it->second;
}

void HeadManager::CreateActor(const v1::CreateActorRequest& request, Reply<v1::ActorInfo> reply) {
  const v1::ActorSpec& spec = request.spec();
  if (spec.class_name().empty()) {
    reply(absl::InvalidArgumentError("spec.class_name: must not be empty"));
    return;
  }
  if (!ClassKnown(spec.class_name())) {
    reply(absl::InvalidArgumentError(absl::StrCat("spec.class_name: unknown actor class '",
                                                  spec.class_name(), "' (known: ", KnownClasses(),
                                                  ")")));
    return;
  }
  if (auto status = ValidateResources(spec.resources()); !status.ok()) {
    reply(status);
    return;
  }
  if (spec.max_restarts() < -1) {
    reply(absl::InvalidArgumentError("spec.max_restarts: must be -1 (unlimited) or >= 0"));
    return;
  }
  if (auto status = CheckWait(request.wait_alive_ms(), "wait_alive_ms"); !status.ok()) {
    reply(status);
    return;
  }
  if (!spec.name().empty() && actor_names_.contains(spec.name())) {
    reply(absl::AlreadyExistsError(
        absl::StrCat("spec.name: an actor named '", spec.name(), "' already exists")));
    return;
  }
  Actor actor;
  actor.info.mutable_spec()->CopyFrom(spec);
  const std::string id = RandomId("actor-");
  actor.info.mutable_spec()->set_actor_id(id);
  actor.info.set_state(v1::PENDING);
  actor.not_before = absl::Now();
  if (!spec.name().empty()) actor_names_[spec.name()] = id;
  Actor& stored = actors_[id] = std::move(actor);
  PersistActor(stored);
  if (request.wait_alive_ms() > 0) {
    stored.waiters.push_back(
        {absl::Now() + absl::Milliseconds(request.wait_alive_ms()), std::move(reply)});
  } else {
    reply(stored.info);
  }
  Schedule();
}

void HeadManager::GetActor(const v1::GetActorRequest& request, Reply<v1::ActorInfo> reply) {
  if (auto status = CheckWait(request.wait_alive_ms(), "wait_alive_ms"); !status.ok()) {
    reply(status);
    return;
  }
  Actor* actor = FindActor(request.actor_id(), request.name());
  if (actor == nullptr) {
    reply(absl::NotFoundError(
        absl::StrCat(request.actor_id().empty() ? "name: no actor named '" : "actor_id: no actor '",
                     request.actor_id().empty() ? request.name() : request.actor_id(), "'")));
    return;
  }
  const v1::ActorState state = actor->info.state();
  if (request.wait_alive_ms() > 0 && state != v1::ALIVE && state != v1::DEAD) {
    actor->waiters.push_back(
        {absl::Now() + absl::Milliseconds(request.wait_alive_ms()), std::move(reply)});
    return;
  }
  reply(actor->info);
}

void HeadManager::KillActor(const v1::KillActorRequest& request,
                            Reply<v1::KillActorResponse> reply) {
  Actor* actor = FindActor(request.actor_id(), request.name());
  if (actor == nullptr) {
    reply(absl::NotFoundError(
        absl::StrCat("actor_id/name: no actor '",
                     request.actor_id().empty() ? request.name() : request.actor_id(), "'")));
    return;
  }
  const std::string worker_id = actor->info.worker_id();
  if (auto it = workers_by_id_.find(worker_id);
      it != workers_by_id_.end() && it->second.info.actor_id() == actor->info.spec().actor_id()) {
    it->second.info.clear_actor_id();
    if (it->second.info.alive()) {
      workers_.StopActor(it->second.info.address(), actor->info.spec().actor_id(),
                         [](absl::Status) {});
    }
  }
  actor->start_in_flight = false;
  if (request.no_restart()) {
    ActorDead(*actor, "killed (no_restart)");
  } else {
    ActorLost(*actor, "killed", /*count_restart=*/true);
  }
  reply(v1::KillActorResponse());
  Schedule();
}

void HeadManager::ActorLost(Actor& actor, const std::string& reason, bool count_restart) {
  if (actor.info.state() == v1::DEAD) return;
  const int max = actor.info.spec().max_restarts();
  // Groups the actor was in are dissolved whatever happens to the actor.
  DissolveGroupsOf(actor, absl::StrCat("lost: ", reason));
  if (count_restart && max != -1 && actor.info.num_restarts() >= max) {
    ActorDead(actor, absl::StrCat(reason, " (no restarts left of ", max, ")"));
    return;
  }
  if (count_restart) actor.info.set_num_restarts(actor.info.num_restarts() + 1);
  actor.preferred_node = actor.info.node_id();
  actor.pinned_worker.clear();
  actor.info.set_state(v1::RESTARTING);
  actor.info.set_death_reason(reason);
  actor.info.clear_address();
  absl::Duration backoff = config_.restart_backoff;
  for (int i = 1; i < actor.info.num_restarts() && backoff < config_.max_restart_backoff; ++i) {
    backoff *= 2;
  }
  actor.not_before = absl::Now() + std::min(backoff, config_.max_restart_backoff);
  RL_LOG(INFO) << "actor " << actor.info.spec().actor_id() << " RESTARTING (restart "
               << actor.info.num_restarts() << "): " << reason;
  PersistActor(actor);
}

void HeadManager::DissolveGroupsOf(const Actor& actor, const std::string& what) {
  for (auto& [id, group] : groups_) {
    if (group.info.state() == v1::GROUP_DISSOLVED) continue;
    for (const auto& member : group.info.members()) {
      if (member.actor_id() == actor.info.spec().actor_id()) {
        DissolveGroup(
            group, absl::StrCat("rank ", member.rank(), " (actor ", member.actor_id(), ") ", what));
        break;
      }
    }
  }
}

void HeadManager::ActorDead(Actor& actor, const std::string& reason) {
  if (actor.info.state() == v1::DEAD) return;
  DissolveGroupsOf(actor, absl::StrCat("is dead: ", reason));
  actor.info.set_state(v1::DEAD);
  actor.info.set_death_reason(reason);
  actor.info.clear_address();
  actor.pinned_worker.clear();
  if (!actor.info.spec().name().empty()) actor_names_.erase(actor.info.spec().name());
  RL_LOG(INFO) << "actor " << actor.info.spec().actor_id() << " DEAD: " << reason;
  PersistActor(actor);
  NotifyActorWaiters(actor, /*expired_only=*/false, absl::Now());
}

void HeadManager::ActorAlive(Actor& actor, const Worker& worker) {
  actor.start_in_flight = false;
  actor.info.set_state(v1::ALIVE);
  actor.info.clear_death_reason();
  actor.info.set_node_id(worker.info.node_id());
  actor.info.set_worker_id(worker.info.worker_id());
  actor.info.set_address(worker.info.address());
  PersistActor(actor);
  NotifyActorWaiters(actor, /*expired_only=*/false, absl::Now());
  for (auto& [id, group] : groups_) {
    if (group.info.state() != v1::GROUP_FORMING) continue;
    for (const auto& member : group.info.members()) {
      if (member.actor_id() == actor.info.spec().actor_id()) GroupProgress(group);
    }
  }
}

void HeadManager::NotifyActorWaiters(Actor& actor, bool expired_only, absl::Time now) {
  const bool settled = actor.info.state() == v1::ALIVE || actor.info.state() == v1::DEAD;
  auto& waiters = actor.waiters;
  for (auto it = waiters.begin(); it != waiters.end();) {
    if (settled || (expired_only && now >= it->deadline)) {
      it->reply(actor.info);  // the caller reads the state
      it = waiters.erase(it);
    } else {
      ++it;
    }
  }
}

void HeadManager::PersistActor(const Actor& actor) {
  if (absl::Status status = db_.PutActor(actor.info); !status.ok()) {
    RL_LOG(ERROR) << status;
  }
}

HeadManager::Worker* HeadManager::PickWorker(const Actor& actor) {
  if (!actor.pinned_worker.empty()) {
    auto it = workers_by_id_.find(actor.pinned_worker);
    if (it != workers_by_id_.end() && it->second.info.alive() &&
        (it->second.info.actor_id().empty() ||
         it->second.info.actor_id() == actor.info.spec().actor_id())) {
      return &it->second;
    }
    return nullptr;
  }
  const v1::WorkerKind kind = KindFor(actor.info.spec().resources());
  Worker* fallback = nullptr;
  for (auto& [id, worker] : workers_by_id_) {
    if (!worker.info.alive() || !worker.info.actor_id().empty() || worker.info.kind() != kind) {
      continue;
    }
    if (!actor.preferred_node.empty() && worker.info.node_id() == actor.preferred_node) {
      return &worker;
    }
    if (fallback == nullptr) fallback = &worker;
  }
  return fallback;
}

void HeadManager::Schedule() {
  const absl::Time now = absl::Now();
  for (auto& [id, actor] : actors_) {
    const v1::ActorState state = actor.info.state();
    if ((state != v1::PENDING && state != v1::RESTARTING) || actor.start_in_flight ||
        actor.awaiting_reclaim || now < actor.not_before) {
      continue;
    }
    Worker* worker = PickWorker(actor);
    if (worker != nullptr) StartOn(actor, *worker);
  }
}

void HeadManager::StartOn(Actor& actor, Worker& worker) {
  const std::string actor_id = actor.info.spec().actor_id();
  worker.info.set_actor_id(actor_id);
  actor.start_in_flight = true;
  actor.info.set_incarnation(actor.info.incarnation() + 1);
  actor.info.set_worker_id(worker.info.worker_id());
  actor.info.set_node_id(worker.info.node_id());
  const int64_t incarnation = actor.info.incarnation();
  const std::string worker_id = worker.info.worker_id();
  const std::string instance = worker.info.instance_id();
  v1::StartActorRequest request;
  *request.mutable_spec() = actor.info.spec();
  request.set_incarnation(incarnation);
  // A member of a forming group joins it in the same call; its rank then counts as joined.
  std::string join_group;
  int64_t join_incarnation = 0;
  if (Group* group = GroupToJoinAtStart(actor)) {
    *request.mutable_join_group() = group->info;
    request.set_join_rank(actor.rank);
    join_group = group->info.group_id();
    join_incarnation = group->info.incarnation();
  }
  workers_.StartActor(worker.info.address(), std::move(request),
                      [this, actor_id, worker_id, instance, incarnation, join_group,
                       join_incarnation](absl::Status status) {
                        auto actor_it = actors_.find(actor_id);
                        auto worker_it = workers_by_id_.find(worker_id);
                        if (actor_it == actors_.end()) return;
                        Actor& actor = actor_it->second;
                        if (!actor.start_in_flight || actor.info.incarnation() != incarnation)
                          return;
                        actor.start_in_flight = false;
                        const bool worker_same = worker_it != workers_by_id_.end() &&
                                                 worker_it->second.info.alive() &&
                                                 worker_it->second.info.instance_id() == instance;
                        if (status.ok() && worker_same) {
                          if (auto group = groups_.find(join_group);
                              group != groups_.end() &&
                              group->second.info.incarnation() == join_incarnation &&
                              group->second.info.state() == v1::GROUP_FORMING) {
                            group->second.joined.insert(actor.rank);
                          }
                          ActorAlive(actor, worker_it->second);
                          return;
                        }
                        if (worker_same) worker_it->second.info.clear_actor_id();
                        if (status.code() == absl::StatusCode::kNotFound ||
                            status.code() == absl::StatusCode::kInvalidArgument ||
                            status.code() == absl::StatusCode::kFailedPrecondition) {
                          // The class cannot be built from this spec: retrying cannot help.
                          ActorDead(actor, absl::StrCat("could not start: ", status.message()));
                          return;
                        }
                        RL_LOG(WARNING) << "starting actor " << actor_id << " on " << worker_id
                                        << " failed: " << status << "; will retry";
                        actor.not_before = absl::Now() + config_.restart_backoff;
                        Schedule();
                      });
}

// ---- groups ---------------------------------------------------------------------------------

HeadManager::Group* HeadManager::FindGroup(const std::string& group_id, const std::string& name) {
  std::string id = group_id;
  if (id.empty() && !name.empty()) {
    auto it = group_names_.find(name);
    if (it == group_names_.end()) return nullptr;
    id = it->second;
  }
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::vector<std::string>> HeadManager::PlanWorkers(const v1::GroupSpec& spec,
                                                                  int count) {
  const v1::WorkerKind kind = KindFor(spec.resources());
  absl::btree_map<std::string, FreeWorkers> by_node;
  for (const auto& [id, worker] : workers_by_id_) {
    if (!worker.info.alive() || !worker.info.actor_id().empty() || worker.info.kind() != kind) {
      continue;
    }
    auto node = nodes_.find(worker.info.node_id());
    if (node != nodes_.end() && !node->second.info.alive()) continue;
    FreeWorkers& entry = by_node[worker.info.node_id()];
    entry.node_id = worker.info.node_id();
    entry.worker_ids.push_back(id);
  }
  std::vector<FreeWorkers> nodes;
  for (auto& [id, entry] : by_node) nodes.push_back(std::move(entry));
  return PlaceRanks(std::move(nodes), count, spec.strategy(),
                    kind == v1::WORKER_KIND_GPU ? "gpu" : "cpu");
}

std::string HeadManager::AddMemberActor(const v1::GroupSpec& spec, const std::string& group_id,
                                        int rank, const std::string& worker_id) {
  Actor actor;
  actor.group_id = group_id;
  actor.rank = rank;
  const std::string id = RandomId("actor-");
  v1::ActorSpec* actor_spec = actor.info.mutable_spec();
  actor_spec->set_actor_id(id);
  actor_spec->set_class_name(spec.actor_class());
  *actor_spec->mutable_resources() = spec.resources();
  actor_spec->set_max_restarts(spec.max_restarts());
  actor_spec->set_init_args(spec.init_args());
  // Members are named <group>/<rank> unless a user's actor already holds that name.
  const std::string name = absl::StrCat(spec.name(), "/", rank);
  if (!actor_names_.contains(name)) {
    actor_spec->set_name(name);
    actor_names_[name] = id;
  }
  actor.info.set_state(v1::PENDING);
  actor.pinned_worker = worker_id;
  PersistActor(actors_[id] = std::move(actor));
  return id;
}

void HeadManager::CreateGroup(const v1::CreateGroupRequest& request, Reply<v1::GroupInfo> reply) {
  v1::GroupSpec spec = request.spec();
  if (spec.size() < 1 || spec.size() > kMaxGroupSize) {
    reply(absl::InvalidArgumentError(
        absl::StrCat("spec.size: ", spec.size(), " is outside [1, ", kMaxGroupSize, "]")));
    return;
  }
  if (!ClassKnown(spec.actor_class())) {
    reply(absl::InvalidArgumentError(absl::StrCat("spec.actor_class: unknown actor class '",
                                                  spec.actor_class(), "' (known: ", KnownClasses(),
                                                  ")")));
    return;
  }
  if (auto status = ValidateResources(spec.resources()); !status.ok()) {
    reply(status);
    return;
  }
  if (spec.backend() == v1::NCCL && !WantsGpu(spec.resources())) {
    reply(absl::InvalidArgumentError("spec.backend: NCCL needs {gpu: 1} members"));
    return;
  }
  if (auto status = CheckWait(request.timeout_ms(), "timeout_ms"); !status.ok()) {
    reply(status);
    return;
  }
  if (spec.strategy() == v1::PLACEMENT_STRATEGY_UNSPECIFIED) spec.set_strategy(v1::PACK);
  const absl::Duration timeout = request.timeout_ms() > 0 ? absl::Milliseconds(request.timeout_ms())
                                                          : config_.group_form_timeout;
  const absl::Time deadline = absl::Now() + timeout;

  Group* existing = spec.name().empty() ? nullptr : FindGroup("", spec.name());
  if (existing != nullptr) {
    if (!SameGroupSpec(existing->info.spec(), spec) &&
        existing->info.state() != v1::GROUP_DISSOLVED) {
      reply(absl::AlreadyExistsError(absl::StrCat(
          "spec.name: group '", spec.name(), "' exists with a different spec; remove it first")));
      return;
    }
    if (existing->info.state() == v1::GROUP_READY) {
      reply(existing->info);  // cached
      return;
    }
    if (existing->info.state() == v1::GROUP_FORMING) {
      existing->waiters.push_back({deadline, std::move(reply)});
      return;
    }
    if (!SameGroupSpec(existing->info.spec(), spec)) {
      reply(absl::AlreadyExistsError(absl::StrCat(
          "spec.name: dissolved group '", spec.name(),
          "' has a different spec; remove it before creating another with this name")));
      return;
    }
    // Re-form: keep the members that live on, replace the dead.
    std::vector<int> replace;
    for (const auto& member : existing->info.members()) {
      Actor* actor = FindActor(member.actor_id(), "");
      if (actor == nullptr || actor->info.state() == v1::DEAD) replace.push_back(member.rank());
    }
    auto planned = PlanWorkers(spec, static_cast<int>(replace.size()));
    if (!planned.ok()) {
      reply(planned.status());
      return;
    }
    for (size_t i = 0; i < replace.size(); ++i) {
      existing->info.mutable_members(replace[i])
          ->set_actor_id(
              AddMemberActor(spec, existing->info.group_id(), replace[i], (*planned)[i]));
    }
    existing->waiters.push_back({deadline, std::move(reply)});
    existing->form_deadline = deadline;
    FormGroup(*existing);
    Schedule();
    return;
  }

  auto planned = PlanWorkers(spec, spec.size());
  if (!planned.ok()) {
    reply(planned.status());
    return;
  }
  Group group;
  group.info.set_group_id(RandomId("group-"));
  if (spec.name().empty()) spec.set_name(group.info.group_id());
  *group.info.mutable_spec() = spec;
  for (int rank = 0; rank < spec.size(); ++rank) {
    v1::GroupMember* member = group.info.add_members();
    member->set_rank(rank);
    member->set_actor_id(AddMemberActor(spec, group.info.group_id(), rank, (*planned)[rank]));
  }
  group.waiters.push_back({deadline, std::move(reply)});
  group.form_deadline = deadline;
  group_names_[spec.name()] = group.info.group_id();
  Group& stored = groups_[group.info.group_id()] = std::move(group);
  FormGroup(stored);
  Schedule();
}

void HeadManager::FormGroup(Group& group) {
  group.info.set_incarnation(group.info.incarnation() + 1);
  group.info.set_state(v1::GROUP_FORMING);
  group.info.clear_dissolved_reason();
  group.info.set_store_prefix(
      absl::StrCat("group/", group.info.group_id(), "/", group.info.incarnation()));
  group.joining = false;
  group.joined.clear();
  PersistGroup(group);
  GroupProgress(group);
}

HeadManager::Group* HeadManager::GroupToJoinAtStart(const Actor& actor) {
  if (actor.group_id.empty()) return nullptr;
  auto it = groups_.find(actor.group_id);
  if (it == groups_.end()) return nullptr;
  Group& group = it->second;
  if (group.info.state() != v1::GROUP_FORMING || group.awaiting_reclaim || group.joining ||
      actor.rank < 0 || actor.rank >= group.info.members_size() ||
      group.info.members(actor.rank).actor_id() != actor.info.spec().actor_id()) {
    return nullptr;
  }
  return &group;
}

void HeadManager::GroupReady(Group& group) {
  group.joining = false;
  group.info.set_state(v1::GROUP_READY);
  PersistGroup(group);
  RL_LOG(INFO) << "group " << group.info.spec().name() << " READY (incarnation "
               << group.info.incarnation() << ", " << group.info.members_size() << " ranks)";
  for (auto& waiter : group.waiters) waiter.reply(group.info);
  group.waiters.clear();
}

void HeadManager::GroupProgress(Group& group) {
  if (group.info.state() != v1::GROUP_FORMING || group.joining) return;
  // Every member must be ALIVE before anyone joins: ranks learn each other's addresses.
  for (auto& member : *group.info.mutable_members()) {
    Actor* actor = FindActor(member.actor_id(), "");
    if (actor == nullptr || actor->info.state() != v1::ALIVE) return;
    member.set_node_id(actor->info.node_id());
    member.set_worker_id(actor->info.worker_id());
    member.set_address(actor->info.address());
  }
  if (group.awaiting_reclaim) {
    // After a head restart: every rank re-registered with this incarnation; nothing to redo.
    group.awaiting_reclaim = false;
    group.info.set_state(v1::GROUP_READY);
    PersistGroup(group);
    RL_LOG(INFO) << "group " << group.info.spec().name() << " reclaimed after head restart";
    return;
  }
  // Members started with the group already joined; the others (survivors of a re-form, members
  // restarted on their own) join now.
  std::vector<int> to_join;
  for (const auto& member : group.info.members()) {
    if (!group.joined.contains(member.rank())) to_join.push_back(member.rank());
  }
  if (to_join.empty()) {
    GroupReady(group);
    return;
  }
  group.joining = true;
  const std::string group_id = group.info.group_id();
  const int64_t incarnation = group.info.incarnation();
  for (int rank : to_join) {
    const v1::GroupMember& member = group.info.members(rank);
    v1::JoinGroupRequest request;
    *request.mutable_group() = group.info;
    request.set_rank(rank);
    workers_.JoinGroup(
        member.address(), std::move(request),
        [this, group_id, incarnation, rank](absl::Status status) {
          auto it = groups_.find(group_id);
          if (it == groups_.end()) return;
          Group& group = it->second;
          if (group.info.incarnation() != incarnation || group.info.state() != v1::GROUP_FORMING) {
            return;
          }
          if (!status.ok()) {
            FailGroupWaiters(group, absl::UnavailableError(absl::StrCat(
                                        "rank ", rank, " could not join: ", status.message())));
            DissolveGroup(group,
                          absl::StrCat("rank ", rank, " could not join: ", status.message()));
            return;
          }
          group.joined.insert(rank);
          if (static_cast<int>(group.joined.size()) < group.info.members_size()) return;
          GroupReady(group);
        });
  }
}

void HeadManager::DissolveGroup(Group& group, const std::string& reason) {
  if (group.info.state() == v1::GROUP_DISSOLVED) return;
  RL_LOG(INFO) << "group " << group.info.spec().name() << " dissolved: " << reason;
  const bool was_forming = group.info.state() == v1::GROUP_FORMING;
  group.info.set_state(v1::GROUP_DISSOLVED);
  group.info.set_dissolved_reason(reason);
  group.joining = false;
  group.awaiting_reclaim = false;
  PersistGroup(group);
  if (was_forming)
    FailGroupWaiters(group, absl::AbortedError(absl::StrCat("group ", group.info.spec().name(),
                                                            " dissolved while forming: ", reason)));
  for (const auto& member : group.info.members()) {
    Actor* actor = FindActor(member.actor_id(), "");
    if (actor == nullptr || actor->info.state() != v1::ALIVE) continue;
    v1::LeaveGroupRequest request;
    request.set_group_id(group.info.group_id());
    request.set_incarnation(group.info.incarnation());
    request.set_reason(reason);
    workers_.LeaveGroup(actor->info.address(), std::move(request), [](absl::Status) {});
  }
  if (group_dissolved_) group_dissolved_(group.info.spec().name(), reason);
}

void HeadManager::DissolveGroupNamed(const std::string& name, const std::string& reason) {
  if (Group* group = FindGroup("", name); group != nullptr) DissolveGroup(*group, reason);
}

void HeadManager::FailGroupWaiters(Group& group, const absl::Status& status) {
  for (auto& waiter : group.waiters) waiter.reply(status);
  group.waiters.clear();
}

void HeadManager::PersistGroup(const Group& group) {
  if (absl::Status status = db_.PutGroup(group.info); !status.ok()) RL_LOG(ERROR) << status;
}

void HeadManager::GetGroup(const v1::GetGroupRequest& request, Reply<v1::GroupInfo> reply) {
  Group* group = FindGroup(request.group_id(), request.name());
  if (group == nullptr) {
    reply(GroupNotFound(request.group_id(), request.name()));
    return;
  }
  reply(group->info);
}

void HeadManager::RemoveGroup(const v1::RemoveGroupRequest& request,
                              Reply<v1::RemoveGroupResponse> reply) {
  Group* group = FindGroup(request.group_id(), request.name());
  if (group == nullptr) {
    reply(GroupNotFound(request.group_id(), request.name()));
    return;
  }
  FailGroupWaiters(*group, absl::AbortedError("group removed"));
  group->info.set_state(v1::GROUP_DISSOLVED);  // no LeaveGroup fan-out: the actors stop
  const std::string group_id = group->info.group_id();
  const std::string name = group->info.spec().name();
  std::vector<std::string> members;
  for (const auto& member : group->info.members()) members.push_back(member.actor_id());
  for (const std::string& actor_id : members) {
    Actor* actor = FindActor(actor_id, "");
    if (actor == nullptr) continue;
    if (auto it = workers_by_id_.find(actor->info.worker_id());
        it != workers_by_id_.end() && it->second.info.actor_id() == actor_id) {
      it->second.info.clear_actor_id();
      if (it->second.info.alive())
        workers_.StopActor(it->second.info.address(), actor_id, [](absl::Status) {});
    }
    actor->start_in_flight = false;
    ActorDead(*actor, absl::StrCat("group ", name, " removed"));
    // Members of a removed group are not kept as history.
    actor->waiters.clear();
    if (absl::Status status = db_.DeleteActor(actor_id); !status.ok()) RL_LOG(ERROR) << status;
    actors_.erase(actor_id);
  }
  if (absl::Status status = db_.DeleteGroup(group_id); !status.ok()) RL_LOG(ERROR) << status;
  group_names_.erase(name);
  groups_.erase(group_id);
  reply(v1::RemoveGroupResponse());
  Schedule();
}

// ---- cluster --------------------------------------------------------------------------------

v1::ClusterState HeadManager::Snapshot() const {
  v1::ClusterState state;
  state.set_head_address(head_address_);
  state.set_head_start_unix_ms(UnixMillis(start_time_));
  for (const auto& [id, node] : nodes_) *state.add_nodes() = node.info;
  for (const auto& [id, worker] : workers_by_id_) *state.add_workers() = worker.info;
  for (const auto& [id, actor] : actors_) *state.add_actors() = actor.info;
  for (const auto& [id, group] : groups_) *state.add_groups() = group.info;
  return state;
}

int HeadManager::AliveWorkers() const {
  int alive = 0;
  for (const auto& [id, worker] : workers_by_id_) alive += worker.info.alive() ? 1 : 0;
  return alive;
}

void HeadManager::GetClusterState(Reply<v1::ClusterState> reply) { reply(Snapshot()); }

void HeadManager::WaitCluster(const v1::WaitClusterRequest& request,
                              Reply<v1::ClusterState> reply) {
  if (auto status = CheckWait(request.timeout_ms(), "timeout_ms"); !status.ok()) {
    reply(status);
    return;
  }
  cluster_waiters_.push_back({request.min_nodes(), request.min_workers(),
                              absl::Now() + absl::Milliseconds(request.timeout_ms()),
                              std::move(reply)});
  CheckClusterWaiters(absl::Now());
}

void HeadManager::CheckClusterWaiters(absl::Time now) {
  if (cluster_waiters_.empty()) return;
  int alive_nodes = 0;
  for (const auto& [id, node] : nodes_) alive_nodes += node.info.alive() ? 1 : 0;
  const int alive_workers = AliveWorkers();
  for (auto it = cluster_waiters_.begin(); it != cluster_waiters_.end();) {
    if (alive_nodes >= it->min_nodes && alive_workers >= it->min_workers) {
      it->reply(Snapshot());
    } else if (now >= it->deadline) {
      it->reply(absl::DeadlineExceededError(
          absl::StrCat("cluster has ", alive_nodes, " live nodes and ", alive_workers,
                       " live workers; waited for ", it->min_nodes, " and ", it->min_workers)));
    } else {
      ++it;
      continue;
    }
    it = cluster_waiters_.erase(it);
  }
}

}  // namespace raylight::head
