// HeadManager: the head's state — nodes, workers, actors, groups — and every decision on it:
// health, placement, restarts, group formation. Runs entirely on one io_context thread: gRPC
// handlers (head_service.cc), worker replies (worker_client.cc) and timers post onto it, so no
// member needs a lock. Never sees grpc::ServerContext.
//
// Actor lifecycle:
//
//   CreateActor --> PENDING --worker placed, StartActor ok--> ALIVE
//                      |                                        |
//                      | start failed (unknown class, ctor)     | worker or node dead,
//                      v                                        | KillActor(no_restart=false)
//                    DEAD <--no restarts left---------------- RESTARTING --placed, started--> ALIVE
//                      ^                                 (backoff; same node preferred)
//                      +-- KillActor(no_restart) / RemoveGroup
//
// Group lifecycle: FORMING (members placed and started, then JoinGroup on every rank) --> READY;
// a member's death, or a failed join --> DISSOLVED (survivors told to leave); CreateGroup with the
// name of a DISSOLVED group forms it again (new incarnation) with its surviving actors, replacing
// only dead ones — models loaded in survivors stay loaded.
//
// Head restart: actors and groups come back from the StateDb as RESTARTING/FORMING "awaiting
// reclaim"; workers re-register with what they host and are adopted without a restart. What is
// not reclaimed within one deadline is restarted the ordinary way.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "raylight/v1/head.pb.h"
#include "runtime/head/head_config.h"
#include "runtime/head/state_db.h"
#include "runtime/head/worker_client.h"

namespace raylight::head {

template <typename T>
using Reply = absl::AnyInvocable<void(absl::StatusOr<T>)>;

class HeadManager {
 public:
  // `io`, `db` and `workers` must outlive the manager.
  HeadManager(const HeadConfig& config, boost::asio::io_context& io, StateDb& db,
              WorkerClient& workers, std::string head_address);
  ~HeadManager();
  HeadManager(const HeadManager&) = delete;
  HeadManager& operator=(const HeadManager&) = delete;

  // Loads durable state and starts the health timer. On the io thread.
  absl::Status Start();
  void Stop();

  // Every method below runs on the io thread and answers through `reply` (possibly later).
  void RegisterNode(const v1::RegisterNodeRequest& request, Reply<v1::RegisterNodeResponse> reply);
  void NodeHeartbeat(const v1::NodeHeartbeatRequest& request, Reply<v1::HeartbeatResponse> reply);
  void RegisterWorker(const v1::RegisterWorkerRequest& request,
                      Reply<v1::RegisterWorkerResponse> reply);
  void WorkerHeartbeat(const v1::WorkerHeartbeatRequest& request,
                       Reply<v1::HeartbeatResponse> reply);
  void ReportWorkerExit(const v1::ReportWorkerExitRequest& request,
                        Reply<v1::ReportWorkerExitResponse> reply);
  void CreateActor(const v1::CreateActorRequest& request, Reply<v1::ActorInfo> reply);
  void GetActor(const v1::GetActorRequest& request, Reply<v1::ActorInfo> reply);
  void KillActor(const v1::KillActorRequest& request, Reply<v1::KillActorResponse> reply);
  void CreateGroup(const v1::CreateGroupRequest& request, Reply<v1::GroupInfo> reply);
  void GetGroup(const v1::GetGroupRequest& request, Reply<v1::GroupInfo> reply);
  void RemoveGroup(const v1::RemoveGroupRequest& request, Reply<v1::RemoveGroupResponse> reply);
  void GetClusterState(Reply<v1::ClusterState> reply);
  void WaitCluster(const v1::WaitClusterRequest& request, Reply<v1::ClusterState> reply);
  // The cluster as it is now (the job scheduler reads it).
  v1::ClusterState Snapshot() const;
  // Dissolves the group named `name` (its members leave it and keep their actors and what they
  // loaded; CreateGroup forms it again). Nothing for an unknown or dissolved group.
  void DissolveGroupNamed(const std::string& name, const std::string& reason);
  // Told of every group dissolved from now on (a member lost or hung, a formation failed, ...),
  // with the group's name and why. One listener (the job manager); on the io thread.
  void OnGroupDissolved(
      std::function<void(const std::string& name, const std::string& reason)> listener) {
    group_dissolved_ = std::move(listener);
  }

 private:
  struct Node {
    v1::NodeInfo info;
    absl::Time last_seen;
    absl::Time died = absl::InfiniteFuture();  // when it was marked dead
  };
  struct Worker {
    v1::WorkerInfo info;  // info.actor_id: the actor placed or being placed here
    absl::Time last_seen;
  };
  struct ActorWaiter {
    absl::Time deadline;
    Reply<v1::ActorInfo> reply;
  };
  struct Actor {
    v1::ActorInfo info;
    absl::Time not_before;  // restart backoff
    bool start_in_flight = false;
    std::string pinned_worker;         // group members are placed on planned workers
    std::string preferred_node;        // restarts go back to the same node when they can
    std::string group_id;              // group members: their group and rank (not persisted;
    int rank = -1;                     //   after a head restart members join by JoinGroup)
    bool awaiting_reclaim = false;     // loaded after a head restart, not yet re-registered
    std::vector<ActorWaiter> waiters;  // GetActor/CreateActor waiting for ALIVE
  };
  struct GroupWaiter {
    absl::Time deadline;
    Reply<v1::GroupInfo> reply;
  };
  struct Group {
    v1::GroupInfo info;
    bool joining = false;             // JoinGroup calls in flight for the ranks not yet in `joined`
    absl::flat_hash_set<int> joined;  // ranks joined in this incarnation (at start or by JoinGroup)
    absl::Time form_deadline;
    bool awaiting_reclaim = false;
    std::vector<GroupWaiter> waiters;
  };
  struct ClusterWaiter {
    int min_nodes = 0;
    int min_workers = 0;
    absl::Time deadline;
    Reply<v1::ClusterState> reply;
  };

  // Timers and health.
  void ArmTimer();
  void OnTick();
  void CheckHealth(absl::Time now);
  // Drops nodes dead for longer than config_.dead_node_retention, with their dead workers.
  void ForgetDeadNodes(absl::Time now);
  void ExpireWaiters(absl::Time now);
  void MarkNodeDead(Node& node, const std::string& reason);
  void MarkWorkerDead(Worker& worker, const std::string& reason);

  // Actors.
  Actor* FindActor(const std::string& actor_id, const std::string& name);
  void ActorLost(Actor& actor, const std::string& reason, bool count_restart);
  void ActorDead(Actor& actor, const std::string& reason);
  // Dissolves every group `actor` is a member of; `what` completes "rank R (actor A) ...".
  void DissolveGroupsOf(const Actor& actor, const std::string& what);
  void ActorAlive(Actor& actor, const Worker& worker);
  void Schedule();
  Worker* PickWorker(const Actor& actor);
  void StartOn(Actor& actor, Worker& worker);
  void NotifyActorWaiters(Actor& actor, bool expired_only, absl::Time now);
  void PersistActor(const Actor& actor);
  std::string KnownClasses() const;
  bool ClassKnown(const std::string& class_name) const;
  absl::Status ValidateResources(const v1::Resources& resources) const;

  // Groups.
  Group* FindGroup(const std::string& group_id, const std::string& name);
  // A PENDING member actor of `spec`'s group pinned to `worker_id`; returns its id.
  std::string AddMemberActor(const v1::GroupSpec& spec, const std::string& group_id, int rank,
                             const std::string& worker_id);
  void FormGroup(Group& group);
  void GroupProgress(Group& group);
  void GroupReady(Group& group);
  // The group `actor` should join as it starts (a member of a forming group), or null.
  Group* GroupToJoinAtStart(const Actor& actor);
  void DissolveGroup(Group& group, const std::string& reason);
  void FailGroupWaiters(Group& group, const absl::Status& status);
  void PersistGroup(const Group& group);
  absl::StatusOr<std::vector<std::string>> PlanWorkers(const v1::GroupSpec& spec, int count);

  int AliveWorkers() const;
  void CheckClusterWaiters(absl::Time now);

  const HeadConfig config_;
  boost::asio::io_context& io_;
  StateDb& db_;
  WorkerClient& workers_;
  const std::string head_address_;
  const absl::Time start_time_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
  absl::Time reclaim_deadline_ = absl::InfinitePast();

  // Ordered maps: status listings and placement are deterministic.
  absl::btree_map<std::string, Node> nodes_;
  absl::btree_map<std::string, Worker> workers_by_id_;
  absl::btree_map<std::string, Actor> actors_;
  absl::btree_map<std::string, Group> groups_;
  absl::flat_hash_map<std::string, std::string> actor_names_;  // live actors only
  absl::flat_hash_map<std::string, std::string> group_names_;
  std::vector<ClusterWaiter> cluster_waiters_;
  std::function<void(const std::string&, const std::string&)> group_dissolved_;
};

}  // namespace raylight::head
