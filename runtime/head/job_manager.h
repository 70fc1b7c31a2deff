// JobManager: the head's durable job queue and the scheduler that runs each job as one SPMD call
// on a collective group. Runs on the head's io thread, like the HeadManager it uses for groups.
//
// Job lifecycle:
//
//   Submit --validated--> PENDING --group ready--> RUNNING --every rank ok--> SUCCEEDED
//     |                    ^  |                      |  \--InvalidArgument/NotFound/...--> FAILED
//     | invalid:           |  | CancelJob            |   \--CancelJob (stops at next step)-->
//     CANCELLED | error, nothing     |  v                      | | queued             | CANCELLED
//     | a rank lost, a transient error:
//                          +----(backoff, bounded)---+ requeued (failed_attempts < max_retries)
//
// Rank loss: a run's ranks wait for each other in collectives, so one rank's end is everyone's.
// A user's cancel goes to rank 0 (Worker.CancelCall): the ranks stop together at the next model
// call and the group is kept; a run still going after `cancel_grace` is aborted. A rank whose call
// fails (its worker died, or it failed on its own) has the others' calls cancelled at once; once
// rank 0 has ended the others have `rank_grace`; a group the HeadManager dissolves under a run (a
// member dead or hung) has the run's calls cancelled at once. A cancelled call's worker aborts the
// group's communicators (CallCancellation), and a run that ended so, or otherwise irregularly, has
// its group dissolved and formed again before the next run (its members keep their models). The
// retry then waits on the group's formation, which waits out workers the head has not yet seen die
// (their joins fail as missing capacity, which does not count against the job).
//
// Groups: the manager keeps a pool of groups named "jobs/<class>/<gpu|cpu>/<size>/<n>". A job runs
// on an idle READY group of its shape, preferring the one that ran the last job with the same
// affinity (its model is loaded); else a dissolved one of that shape is formed again (survivors
// keep their models); else a new one is formed from free workers; else an idle group of another
// shape is removed to free its workers. One group runs one job at a time.
//
// Durability: every state change is written to the StateDb before it is acknowledged; results go
// to <state_dir>/jobs/<id>.result (written, then renamed) before the job is SUCCEEDED. A head
// restart requeues RUNNING jobs (the attempt does not count as a failure).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "raylight/v1/jobs.pb.h"
#include "raylight/v1/worker.grpc.pb.h"
#include "runtime/head/head_config.h"
#include "runtime/head/head_manager.h"
#include "runtime/head/job_kind.h"
#include "runtime/head/state_db.h"
#include "runtime/rpc/auth.h"

namespace raylight::head {

// One WatchJob stream. Send returns false once the stream is gone; Close ends it.
class JobWatcher {
 public:
  virtual ~JobWatcher() = default;
  virtual bool Send(const v1::JobEvent& event) = 0;
  virtual void Close(const absl::Status& status) = 0;
};

class JobManager {
 public:
  // A client's request id names one submission; longer ones are refused (they are stored and
  // listed with the job).
  static constexpr size_t kMaxRequestIdBytes = 256;

  // Every reference must outlive the manager.
  JobManager(const HeadConfig& config, boost::asio::io_context& io, StateDb& db, HeadManager& head,
             rpc::ClusterToken token, const JobKinds& kinds);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Loads the jobs and starts the scheduler timer. On the io thread.
  absl::Status Start();
  // Cancels the calls in flight and waits for their threads.
  void Stop();

  // On the io thread.
  void Submit(const v1::SubmitJobRequest& request, Reply<v1::JobInfo> reply);
  void Get(const v1::GetJobRequest& request, Reply<v1::JobInfo> reply);
  void List(const v1::ListJobsRequest& request, Reply<v1::ListJobsResponse> reply);
  void Cancel(const v1::CancelJobRequest& request, Reply<v1::JobInfo> reply);
  void Result(const v1::GetJobResultRequest& request, Reply<v1::JobResult> reply);
  void Describe(const v1::DescribeJobKindRequest& request, Reply<v1::JobKindDescription> reply);
  // Sends the job's state now and every event after; closes with NOT_FOUND for unknown jobs.
  void Watch(const std::string& job_id, std::shared_ptr<JobWatcher> watcher);

 private:
  struct Run;
  // INVALID_ARGUMENT naming `field`, with the kinds this head knows.
  absl::Status UnknownKind(const std::string& field, const std::string& kind) const;
  struct Job {
    v1::JobInfo info;
    v1::JobPlan plan;  // dropped when the job ends
    uint64_t seq = 0;  // submission order
    absl::Time not_before = absl::InfinitePast();
    bool cancel_requested = false;
    std::shared_ptr<Run> run;
    std::vector<std::shared_ptr<JobWatcher>> watchers;
    // The running job's latest progress events (bounded: kRecentProgressEvents and bytes),
    // replayed to a watcher that subscribes late, so that it sees the log lines it missed.
    std::deque<std::string> recent_progress;
    int64_t recent_progress_bytes = 0;
  };
  struct PoolGroup {
    std::string name;
    v1::GroupSpec spec;
    std::string busy_job;  // the job running on it, if any
    std::string affinity;  // of the last job it ran
    absl::Time last_used = absl::InfinitePast();
    bool forming = false;  // CreateGroup in flight
    bool removing = false;
    absl::Time retry_after = absl::InfinitePast();
  };

  void ArmTimer();
  void Dispatch();
  // Forgets the jobs that ended more than config_.job_retention ago (rows, results, request
  // ids); at most once a second.
  void ForgetOldJobs(absl::Time now);
  void SyncPool(const v1::ClusterState& cluster);
  void Form(PoolGroup& group);
  void StartRun(Job& job, PoolGroup& group, const v1::GroupInfo& info);
  void OnProgress(const std::string& job_id, const std::shared_ptr<Run>& run, std::string event);
  void OnRunDone(const std::string& job_id, const std::shared_ptr<Run>& run);
  void Finish(Job& job, v1::JobState state, const std::string& error);
  void Persist(const Job& job);
  void Notify(Job& job, const v1::JobEvent& event);
  void NotifyState(Job& job);
  std::string ResultPath(const std::string& job_id) const;
  std::shared_ptr<v1::Worker::Stub> StubFor(const std::string& address);
  // Worker.CancelCall to the run's rank 0 (asynchronous; on the io thread).
  void SendCancelCall(const std::shared_ptr<Run>& run);
  // Aborts what is left of `run` once `grace` has passed (on the io thread).
  void AbortAfter(const std::shared_ptr<Run>& run, absl::Duration grace);

  const HeadConfig config_;
  boost::asio::io_context& io_;
  StateDb& db_;
  HeadManager& head_;
  const rpc::ClusterToken token_;
  const JobKinds& kinds_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
  uint64_t next_seq_ = 1;
  absl::Time last_forget_ = absl::InfinitePast();

  // std::map: references to entries stay valid while others are added (Dispatch holds some).
  std::map<std::string, Job> jobs_;
  // The jobs not yet ended (PENDING or RUNNING): what the scheduler and the queue limit look at,
  // so that their cost does not grow with the jobs kept for history. Added at submit (or load),
  // removed in Finish.
  absl::flat_hash_set<Job*> live_;
  absl::flat_hash_map<std::string, std::string> by_request_id_;
  std::map<std::string, PoolGroup> pool_;  // by group name
  absl::flat_hash_map<std::string, std::shared_ptr<v1::Worker::Stub>> stubs_;
};

}  // namespace raylight::head
