#include "runtime/head/job_manager.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "runtime/common/file_util.h"
#include "runtime/common/ids.h"
#include "runtime/common/log.h"
#include "runtime/rpc/call_transport.h"
#include "runtime/rpc/channels.h"

namespace raylight::head {
namespace {

// FNV-1a 64 over the parts of a spec that make a job what it is (stable across builds and
// restarts, unlike std::hash).
uint64_t SpecDigest(const v1::JobSpec& spec) {
  uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](absl::string_view bytes) {
    for (unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ull;
    hash = (hash ^ 0xff) * 1099511628211ull;  // separates the parts
  };
  mix(spec.kind());
  mix(absl::StrCat(spec.priority(), "/", spec.max_retries()));
  mix(spec.payload());
  return hash;
}

constexpr char kPoolPrefix[] = "jobs/";
constexpr absl::Duration kTick = absl::Milliseconds(250);
constexpr absl::Duration kFormRetry = absl::Seconds(2);

int64_t NowMillis() { return absl::ToUnixMillis(absl::Now()); }

bool Terminal(v1::JobState state) {
  return state == v1::JOB_SUCCEEDED || state == v1::JOB_FAILED || state == v1::JOB_CANCELLED;
}

// Errors that say the job itself is wrong: running it again gives the same answer.
bool JobsFault(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return true;
    default:
      return false;
  }
}

bool WantsGpu(const v1::Resources& resources) { return resources.gpu() > 0; }

// "jobs/<class>/<gpu|cpu>/<size>/": groups of one shape share this prefix.
std::string ShapePrefix(const v1::JobPlan& plan) {
  return absl::StrCat(kPoolPrefix, plan.actor_class(), "/",
                      WantsGpu(plan.resources()) ? "gpu" : "cpu", "/", plan.group_size(), "/");
}

}  // namespace

// One attempt of a job: a thread per rank making the group call; the last one to finish posts
// the outcome to the io thread. Contexts are kept so that an abort can reach the calls.
//
// A rank whose call ends before the others leaves them waiting in collectives for a peer that
// will not come (issue #23: cancel right after submit, a lost or hung rank held the group for
// the 300 s collective timeout). So a failed rank aborts the others at once, and after any other
// end (a result, the user's cancel reaching rank 0) the others have the grace to end on their own.
// Aborting a call is cancelling it: its worker aborts the group's communicators and the group is
// formed again after the run.
struct JobManager::Run {
  int attempt = 0;
  std::string group_name;
  std::string rank0_address;  // where Worker.CancelCall reaches rank 0
  std::string caller_id;      // the calls' CallHeader.caller_id
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> results;  // by rank; each written by its own thread
  std::atomic<int> remaining{0};

  absl::Mutex mu;
  std::vector<grpc::ClientContext*> contexts ABSL_GUARDED_BY(mu);  // null once that call ended
  // Ranks whose call the head cancelled to abort it (their results say nothing of the job).
  std::vector<bool> aborted ABSL_GUARDED_BY(mu);
  bool cancel_rank0 ABSL_GUARDED_BY(mu) = false;
  bool cancel_all ABSL_GUARDED_BY(mu) = false;

  // The user's cancel, sent to rank 0's worker (Worker.CancelCall): rank 0 decides for every
  // rank at its next model call, and the group stays as it is.
  void MarkCancelled() {
    absl::MutexLock lock(&mu);
    cancel_rank0 = true;
  }
  // Cancels every call not yet ended, those not yet started included; their workers abort the
  // group's collectives.
  void Abort() {
    absl::MutexLock lock(&mu);
    cancel_all = true;
    for (size_t rank = 0; rank < contexts.size(); ++rank) {
      if (contexts[rank] == nullptr) continue;
      aborted[rank] = true;
      contexts[rank]->TryCancel();
    }
  }
  bool AbortedRank(int rank) {
    absl::MutexLock lock(&mu);
    return aborted[rank];
  }
  bool AnyAborted() {
    absl::MutexLock lock(&mu);
    return std::find(aborted.begin(), aborted.end(), true) != aborted.end();
  }
  bool GracefulCancel() {
    absl::MutexLock lock(&mu);
    return cancel_rank0 && !cancel_all;
  }
  void Join() {
    for (std::thread& thread : threads) {
      if (thread.joinable()) thread.join();
    }
  }
};

JobManager::JobManager(const HeadConfig& config, boost::asio::io_context& io, StateDb& db,
                       HeadManager& head, rpc::ClusterToken token, const JobKinds& kinds)
    : config_(config),
      io_(io),
      db_(db),
      head_(head),
      token_(std::move(token)),
      kinds_(kinds),
      timer_(io) {}

JobManager::~JobManager() { Stop(); }

absl::Status JobManager::Start() {
  std::error_code error;
  std::filesystem::create_directories(absl::StrCat(config_.state_dir, "/jobs"), error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir: cannot create ", config_.state_dir, "/jobs: ", error.message()));
  }
  auto infos = db_.LoadJobs();
  if (!infos.ok()) return infos.status();
  auto plans = db_.LoadJobPlans();
  if (!plans.ok()) return plans.status();
  std::sort(infos->begin(), infos->end(), [](const v1::JobInfo& a, const v1::JobInfo& b) {
    return a.submit_unix_ms() != b.submit_unix_ms() ? a.submit_unix_ms() < b.submit_unix_ms()
                                                    : a.job_id() < b.job_id();
  });
  int requeued = 0;
  for (v1::JobInfo& info : *infos) {
    Job& job = jobs_[info.job_id()];
    job.seq = next_seq_++;
    if (info.state() == v1::JOB_RUNNING) {
      // The head died with this attempt in flight: its result had nowhere to go. Not the job's
      // failure, so it does not count against its retries.
      info.set_state(v1::JOB_PENDING);
      info.set_error(absl::StrCat("attempt ", info.attempts(), " interrupted by a head restart"));
      ++requeued;
    }
    job.info = std::move(info);
    if (!Terminal(job.info.state())) live_.insert(&job);
    if (!job.info.request_id().empty()) by_request_id_[job.info.request_id()] = job.info.job_id();
  }
  for (auto& [job_id, plan] : *plans) {
    if (auto it = jobs_.find(job_id); it != jobs_.end()) it->second.plan = std::move(plan);
  }
  for (auto& [job_id, job] : jobs_) {
    if (!Terminal(job.info.state()) && job.plan.actor_class().empty()) {
      Finish(job, v1::JOB_FAILED, "its plan was lost from the state database");
    } else if (job.info.state() == v1::JOB_PENDING) {
      Persist(job);
    }
  }
  if (!jobs_.empty()) {
    RL_LOG(INFO) << "jobs: " << jobs_.size() << " loaded, " << live_.size() << " to run ("
                 << requeued << " interrupted by the restart)";
  }
  // A group dissolved under a run (a member died or stopped answering heartbeats): the survivors
  // wait for it in collectives; end their calls now.
  head_.OnGroupDissolved([this](const std::string& name, const std::string& reason) {
    for (Job* job : live_) {
      if (job->run != nullptr && job->run->group_name == name) {
        RL_LOG(WARNING) << "job " << job->info.job_id() << ": group " << name
                        << " dissolved under its run (" << reason << "); aborting the run";
        job->run->Abort();
      }
    }
  });
  ArmTimer();
  return absl::OkStatus();
}

void JobManager::Stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  for (Job* job : live_) {
    if (job->run == nullptr) continue;
    job->run->Abort();
    job->run->Join();
  }
}

void JobManager::ArmTimer() {
  if (stopped_) return;
  timer_.expires_after(absl::ToChronoMilliseconds(kTick));
  timer_.async_wait([this](const boost::system::error_code& error) {
    if (error || stopped_) return;
    Dispatch();
    ForgetOldJobs(absl::Now());
    ArmTimer();
  });
}

void JobManager::ForgetOldJobs(absl::Time now) {
  if (now - last_forget_ < absl::Seconds(1)) return;
  last_forget_ = now;
  const int64_t cutoff_ms = absl::ToUnixMillis(now - config_.job_retention);
  int forgotten = 0;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    const v1::JobInfo& info = it->second.info;
    // A run still winding down (a cancelled attempt's thread) keeps its job until it is done.
    if (!Terminal(info.state()) || it->second.run != nullptr || info.end_unix_ms() == 0 ||
        info.end_unix_ms() > cutoff_ms) {
      ++it;
      continue;
    }
    if (absl::Status status = db_.DeleteJob(info.job_id()); !status.ok()) {
      RL_LOG(ERROR) << status;  // kept, and tried again on the next sweep
      ++it;
      continue;
    }
    std::error_code ignored;
    std::filesystem::remove(ResultPath(info.job_id()), ignored);
    if (auto request = by_request_id_.find(info.request_id());
        request != by_request_id_.end() && request->second == info.job_id()) {
      by_request_id_.erase(request);
    }
    it = jobs_.erase(it);
    ++forgotten;
  }
  if (forgotten > 0) {
    RL_LOG(INFO) << "jobs: forgot " << forgotten << " that ended more than "
                 << absl::FormatDuration(config_.job_retention) << " ago";
  }
}

std::string JobManager::ResultPath(const std::string& job_id) const {
  return absl::StrCat(config_.state_dir, "/jobs/", job_id, ".result");
}

void JobManager::Persist(const Job& job) {
  if (absl::Status status = db_.PutJob(job.info); !status.ok()) RL_LOG(ERROR) << status;
}

void JobManager::Notify(Job& job, const v1::JobEvent& event) {
  std::vector<std::shared_ptr<JobWatcher>> alive;
  for (auto& watcher : job.watchers) {
    if (watcher->Send(event)) alive.push_back(std::move(watcher));
  }
  job.watchers = std::move(alive);
}

void JobManager::NotifyState(Job& job) {
  v1::JobEvent event;
  *event.mutable_info() = job.info;
  Notify(job, event);
  if (Terminal(job.info.state())) {
    for (auto& watcher : job.watchers) watcher->Close(absl::OkStatus());
    job.watchers.clear();
    job.recent_progress.clear();
    job.recent_progress_bytes = 0;
  }
}

void JobManager::Finish(Job& job, v1::JobState state, const std::string& error) {
  live_.erase(&job);
  job.info.set_state(state);
  job.info.set_error(error);
  job.info.set_end_unix_ms(NowMillis());
  Persist(job);
  if (absl::Status status = db_.DeleteJobPlan(job.info.job_id()); !status.ok()) {
    RL_LOG(ERROR) << status;
  }
  job.plan.Clear();
  RL_LOG(INFO) << "job " << job.info.job_id() << " " << v1::JobState_Name(state)
               << (error.empty() ? "" : ": ") << error;
  NotifyState(job);
}

void JobManager::Submit(const v1::SubmitJobRequest& request, Reply<v1::JobInfo> reply) {
  const v1::JobSpec& spec = request.spec();
  if (request.request_id().size() > kMaxRequestIdBytes) {
    reply(absl::InvalidArgumentError(absl::StrCat("request_id: ", request.request_id().size(),
                                                  " bytes; at most ", kMaxRequestIdBytes)));
    return;
  }
  const uint64_t digest = SpecDigest(spec);
  if (!request.request_id().empty()) {
    if (auto it = by_request_id_.find(request.request_id()); it != by_request_id_.end()) {
      const v1::JobInfo& first = jobs_.at(it->second).info;
      if (first.spec_digest() != digest) {
        reply(absl::AlreadyExistsError(
            absl::StrCat("request_id: '", request.request_id(), "' was used for job ",
                         first.job_id(), " with a different spec; use a new request id")));
        return;
      }
      reply(first);  // a retried submit
      return;
    }
  }
  auto kind = kinds_.find(spec.kind());
  if (kind == kinds_.end()) {
    reply(UnknownKind("spec.kind", spec.kind()));
    return;
  }
  if (spec.max_retries() < -1 || spec.max_retries() > 100) {
    reply(absl::InvalidArgumentError(
        absl::StrCat("spec.max_retries: ", spec.max_retries(), " is outside [-1, 100]")));
    return;
  }
  if (const int active = static_cast<int>(live_.size()); active >= config_.max_queued_jobs) {
    reply(absl::ResourceExhaustedError(absl::StrCat("queue: ", active,
                                                    " jobs pending or running (the limit is ",
                                                    config_.max_queued_jobs, "); retry later")));
    return;
  }
  const std::string job_id = RandomId("job-");
  auto plan = kind->second->Plan(job_id, spec.payload(), head_.Snapshot());
  if (!plan.ok()) {
    reply(plan.status());
    return;
  }
  if (plan->group_size() < 1 || plan->actor_class().empty() || plan->method().empty()) {
    reply(absl::InternalError(absl::StrCat("job kind ", spec.kind(), " made an incomplete plan")));
    return;
  }
  Job& job = jobs_[job_id];
  job.seq = next_seq_++;
  job.plan = *std::move(plan);
  v1::JobInfo& info = job.info;
  info.set_job_id(job_id);
  info.set_kind(spec.kind());
  info.set_priority(spec.priority());
  info.set_state(v1::JOB_PENDING);
  info.set_submit_unix_ms(NowMillis());
  info.set_summary(job.plan.summary());
  info.set_request_id(request.request_id());
  info.set_spec_digest(digest);
  info.set_max_retries(spec.max_retries() >= 0 ? spec.max_retries() : config_.job_max_retries);
  // The plan first: a job row without its plan would be failed on the next start.
  if (absl::Status status = db_.PutJobPlan(job_id, job.plan); !status.ok()) {
    jobs_.erase(job_id);
    reply(status);
    return;
  }
  if (absl::Status status = db_.PutJob(info); !status.ok()) {
    (void)db_.DeleteJobPlan(job_id);
    jobs_.erase(job_id);
    reply(status);
    return;
  }
  live_.insert(&job);
  if (!request.request_id().empty()) by_request_id_[request.request_id()] = job_id;
  RL_LOG(INFO) << "job " << job_id << " queued: " << info.summary();
  reply(info);
  boost::asio::post(io_, [this] { Dispatch(); });
}

void JobManager::Get(const v1::GetJobRequest& request, Reply<v1::JobInfo> reply) {
  auto it = jobs_.find(request.job_id());
  if (it == jobs_.end()) {
    reply(absl::NotFoundError(absl::StrCat("job_id: no job '", request.job_id(), "'")));
    return;
  }
  reply(it->second.info);
}

void JobManager::List(const v1::ListJobsRequest& request, Reply<v1::ListJobsResponse> reply) {
  std::vector<const Job*> selected;
  for (const auto& [job_id, job] : jobs_) {
    if (request.states_size() > 0 && std::find(request.states().begin(), request.states().end(),
                                               job.info.state()) == request.states().end()) {
      continue;
    }
    selected.push_back(&job);
  }
  std::sort(selected.begin(), selected.end(),
            [](const Job* a, const Job* b) { return a->seq > b->seq; });  // newest first
  if (request.limit() > 0 && static_cast<int>(selected.size()) > request.limit()) {
    selected.resize(request.limit());
  }
  v1::ListJobsResponse response;
  for (const Job* job : selected) {
    v1::JobInfo* info = response.add_jobs();
    *info = job->info;
    info->clear_last_progress();  // previews can be large; GetJob has them
  }
  reply(std::move(response));
}

void JobManager::Cancel(const v1::CancelJobRequest& request, Reply<v1::JobInfo> reply) {
  auto it = jobs_.find(request.job_id());
  if (it == jobs_.end()) {
    reply(absl::NotFoundError(absl::StrCat("job_id: no job '", request.job_id(), "'")));
    return;
  }
  Job& job = it->second;
  if (Terminal(job.info.state())) {
    reply(job.info);  // nothing to do; the state says how it ended
    return;
  }
  if (job.run == nullptr) {
    Finish(job, v1::JOB_CANCELLED, "cancelled before it ran");
  } else if (!job.cancel_requested) {
    job.cancel_requested = true;
    // Rank 0 decides for every rank at its next model call (the ranks agree there), and the
    // group keeps its communicators and sharded models. A run that has not stopped within the
    // grace (a step longer than it, a rank stuck) is aborted.
    std::shared_ptr<Run> run = job.run;
    run->MarkCancelled();
    SendCancelCall(run);
    AbortAfter(run, config_.cancel_grace);
  }
  reply(job.info);
}

void JobManager::AbortAfter(const std::shared_ptr<Run>& run, absl::Duration grace) {
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, absl::ToChronoMilliseconds(grace));
  // A run that ended meanwhile has no call left to abort.
  timer->async_wait([run, timer](const boost::system::error_code& error) {
    if (!error) run->Abort();
  });
}

void JobManager::SendCancelCall(const std::shared_ptr<Run>& run) {
  struct Call {
    grpc::ClientContext context;
    v1::CancelCallRequest request;
    v1::CancelCallResponse response;
    std::shared_ptr<v1::Worker::Stub> worker_stub;
  };
  auto* call = new Call;
  call->request.set_caller_id(run->caller_id);
  call->worker_stub = StubFor(run->rank0_address);
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  token_.Attach(call->context);
  call->worker_stub->async()->CancelCall(&call->context, &call->request, &call->response,
                                         [call, caller = run->caller_id](grpc::Status status) {
                                           // Not reached: the worker is gone, and so is the call
                                           // (the run fails and ends); the grace bounds the rest.
                                           if (!status.ok()) {
                                             RL_LOG(WARNING) << "cancel of " << caller << ": "
                                                             << status.error_message();
                                           }
                                           delete call;
                                         });
}

absl::Status JobManager::UnknownKind(const std::string& field, const std::string& kind) const {
  std::string known;
  for (const auto& [name, plugin] : kinds_)
    absl::StrAppend(&known, known.empty() ? "" : ", ", name);
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown job kind '", kind, "' (known: ", known, ")"));
}

void JobManager::Describe(const v1::DescribeJobKindRequest& request,
                          Reply<v1::JobKindDescription> reply) {
  auto kind = kinds_.find(request.kind());
  if (kind == kinds_.end()) {
    reply(UnknownKind("kind", request.kind()));
    return;
  }
  auto description = kind->second->Describe();
  if (!description.ok()) {
    reply(description.status());
    return;
  }
  v1::JobKindDescription out;
  out.set_kind(request.kind());
  out.set_description(*std::move(description));
  reply(std::move(out));
}

void JobManager::Result(const v1::GetJobResultRequest& request, Reply<v1::JobResult> reply) {
  auto it = jobs_.find(request.job_id());
  if (it == jobs_.end()) {
    reply(absl::NotFoundError(absl::StrCat("job_id: no job '", request.job_id(), "'")));
    return;
  }
  const v1::JobInfo& info = it->second.info;
  if (info.state() != v1::JOB_SUCCEEDED) {
    reply(absl::FailedPreconditionError(absl::StrCat(
        "job_id: job ", info.job_id(), " is ", v1::JobState_Name(info.state()),
        info.error().empty() ? "" : absl::StrCat(" (", info.error(), ")"), "; no result")));
    return;
  }
  std::ifstream in(ResultPath(info.job_id()), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    reply(absl::DataLossError(absl::StrCat("job ", info.job_id(), ": result file unreadable")));
    return;
  }
  v1::JobResult result;
  result.set_job_id(info.job_id());
  result.set_result(std::move(bytes));
  reply(std::move(result));
}

void JobManager::Watch(const std::string& job_id, std::shared_ptr<JobWatcher> watcher) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    watcher->Close(absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'")));
    return;
  }
  Job& job = it->second;
  v1::JobEvent event;
  *event.mutable_info() = job.info;
  if (!watcher->Send(event)) return;
  if (Terminal(job.info.state())) {
    watcher->Close(absl::OkStatus());
    return;
  }
  for (const std::string& recent : job.recent_progress) {
    v1::JobEvent replay;
    replay.set_progress(recent);
    if (!watcher->Send(replay)) return;
  }
  job.watchers.push_back(std::move(watcher));
}

std::shared_ptr<v1::Worker::Stub> JobManager::StubFor(const std::string& address) {
  auto& stub = stubs_[address];
  if (stub == nullptr) stub = v1::Worker::NewStub(rpc::MakeChannel(address));
  return stub;
}

void JobManager::SyncPool(const v1::ClusterState& cluster) {
  absl::flat_hash_map<std::string, const v1::GroupInfo*> groups;
  for (const v1::GroupInfo& group : cluster.groups()) {
    if (!absl::StartsWith(group.spec().name(), kPoolPrefix)) continue;
    groups[group.spec().name()] = &group;
    if (!pool_.contains(group.spec().name())) {  // formed before a head restart
      PoolGroup& entry = pool_[group.spec().name()];
      entry.name = group.spec().name();
      entry.spec = group.spec();
    }
  }
  for (auto it = pool_.begin(); it != pool_.end();) {
    const PoolGroup& group = it->second;
    if (!groups.contains(it->first) && !group.forming && !group.removing &&
        group.busy_job.empty()) {
      it = pool_.erase(it);  // removed
    } else {
      ++it;
    }
  }
}

void JobManager::Dispatch() {
  if (stopped_) return;
  // The tick runs this four times a second: with nothing waiting, skip the cluster snapshot.
  const bool any_pending = std::any_of(live_.begin(), live_.end(), [](const Job* job) {
    return job->info.state() == v1::JOB_PENDING;
  });
  if (!any_pending) return;
  const v1::ClusterState cluster = head_.Snapshot();
  SyncPool(cluster);
  absl::flat_hash_map<std::string, const v1::GroupInfo*> groups;
  for (const v1::GroupInfo& group : cluster.groups()) groups[group.spec().name()] = &group;
  auto state_of = [&](const PoolGroup& group) {
    auto it = groups.find(group.name);
    return it == groups.end() ? v1::GROUP_STATE_UNSPECIFIED : it->second->state();
  };
  // Free workers by kind, for each actor class: alive, hosting nothing.
  auto free_workers = [&](const v1::JobPlan& plan) {
    int free = 0;
    for (const v1::WorkerInfo& worker : cluster.workers()) {
      if (!worker.alive() || !worker.actor_id().empty()) continue;
      if ((worker.kind() == v1::WORKER_KIND_GPU) != WantsGpu(plan.resources())) continue;
      if (std::find(worker.actor_classes().begin(), worker.actor_classes().end(),
                    plan.actor_class()) == worker.actor_classes().end()) {
        continue;
      }
      ++free;
    }
    return free;
  };

  std::vector<Job*> pending;
  const absl::Time now = absl::Now();
  for (Job* job : live_) {
    if (job->info.state() == v1::JOB_PENDING && job->not_before <= now) pending.push_back(job);
  }
  std::sort(pending.begin(), pending.end(), [](const Job* a, const Job* b) {
    return a->info.priority() != b->info.priority() ? a->info.priority() > b->info.priority()
                                                    : a->seq < b->seq;
  });
  absl::flat_hash_map<std::string, int> reserved;  // workers promised to formations this pass
  bool formation_started = false;
  for (Job* job : pending) {
    if (job->info.state() != v1::JOB_PENDING) continue;  // a formation answer may have ended it
    const std::string prefix = ShapePrefix(job->plan);
    PoolGroup* best = nullptr;
    bool shape_forming = false;
    PoolGroup* dissolved = nullptr;
    for (auto& [name, group] : pool_) {
      if (!absl::StartsWith(name, prefix)) continue;
      if (group.forming || group.removing) {
        shape_forming = shape_forming || group.forming;
        continue;
      }
      if (!group.busy_job.empty()) continue;
      const v1::GroupState state = state_of(group);
      if (state == v1::GROUP_READY) {
        if (best == nullptr ||
            (group.affinity == job->plan.affinity() && best->affinity != job->plan.affinity())) {
          best = &group;
        }
      } else if (state == v1::GROUP_DISSOLVED && group.retry_after <= now && dissolved == nullptr) {
        dissolved = &group;
      }
    }
    if (best != nullptr) {
      StartRun(*job, *best, *groups.at(best->name));
      continue;
    }
    if (shape_forming || formation_started) continue;  // one formation at a time
    if (dissolved != nullptr) {                        // survivors keep their models: form it again
      Form(*dissolved);
      formation_started = true;
      continue;
    }
    const std::string kind_key = WantsGpu(job->plan.resources()) ? "gpu" : "cpu";
    if (free_workers(job->plan) - reserved[kind_key] >= job->plan.group_size()) {
      int index = 0;
      while (pool_.contains(absl::StrCat(prefix, index))) ++index;
      PoolGroup& group = pool_[absl::StrCat(prefix, index)];
      group.name = absl::StrCat(prefix, index);
      group.spec.set_name(group.name);
      group.spec.set_size(job->plan.group_size());
      group.spec.set_actor_class(job->plan.actor_class());
      *group.spec.mutable_resources() = job->plan.resources();
      group.spec.set_strategy(v1::PACK);
      group.spec.set_max_restarts(0);
      reserved[kind_key] += job->plan.group_size();
      Form(group);
      formation_started = true;
      continue;
    }
    // Free the workers of the least recently used idle group of another shape, but only when
    // the idle groups and the free workers together are enough for this job's group: otherwise
    // the removal frees nothing this job can use, a smaller job behind it forms a group on the
    // freed workers, and the next pass removes that group again (issue #23: ~2,000 formations a
    // second, neither job running). The smaller job runs meanwhile (backfill).
    PoolGroup* victim = nullptr;
    int freeable = free_workers(job->plan) - reserved[kind_key];
    for (auto& [name, group] : pool_) {
      if (absl::StartsWith(name, prefix) || !group.busy_job.empty() || group.forming ||
          group.removing || WantsGpu(group.spec.resources()) != WantsGpu(job->plan.resources())) {
        continue;
      }
      freeable += group.spec.size();
      if (victim == nullptr || group.last_used < victim->last_used) victim = &group;
    }
    if (victim != nullptr && freeable >= job->plan.group_size()) {
      RL_LOG(INFO) << "jobs: removing idle group " << victim->name << " to make room for "
                   << job->info.job_id();
      victim->removing = true;
      v1::RemoveGroupRequest remove;
      remove.set_name(victim->name);
      head_.RemoveGroup(remove,
                        [this, name = victim->name](absl::StatusOr<v1::RemoveGroupResponse>) {
                          pool_.erase(name);
                          boost::asio::post(io_, [this] { Dispatch(); });
                        });
      formation_started = true;
    }
  }
}

void JobManager::Form(PoolGroup& group) {
  group.forming = true;
  v1::CreateGroupRequest request;
  *request.mutable_spec() = group.spec;
  RL_LOG(INFO) << "jobs: forming group " << group.name;
  head_.CreateGroup(request, [this, name = group.name](absl::StatusOr<v1::GroupInfo> info) {
    auto it = pool_.find(name);
    if (it == pool_.end()) return;
    it->second.forming = false;
    if (!info.ok()) {
      RL_LOG(WARNING) << "jobs: group " << name << " did not form: " << info.status();
      it->second.retry_after = absl::Now() + kFormRetry;
      // The jobs waiting for this shape see the cause; a formation failure counts as one failed
      // attempt of the first of them, so an impossible group fails its jobs in bounds.
      std::vector<Job*> waiting;
      for (Job* job : live_) {
        if (job->info.state() == v1::JOB_PENDING &&
            absl::StartsWith(name, ShapePrefix(job->plan))) {
          waiting.push_back(job);
        }
      }
      std::sort(waiting.begin(), waiting.end(),
                [](const Job* a, const Job* b) { return a->seq < b->seq; });
      // Missing capacity (a worker being restarted, a node gone) is waited out, as Ray waits
      // for resources; only other causes count against the job.
      const absl::StatusCode code = info.status().code();
      const bool capacity = code == absl::StatusCode::kResourceExhausted ||
                            code == absl::StatusCode::kUnavailable ||
                            code == absl::StatusCode::kDeadlineExceeded;
      if (!waiting.empty()) {
        Job& first = *waiting.front();
        const std::string error =
            absl::StrCat("group ", name, " did not form: ", info.status().message());
        if (!capacity) first.info.set_failed_attempts(first.info.failed_attempts() + 1);
        if (first.info.failed_attempts() > first.info.max_retries()) {
          Finish(first, v1::JOB_FAILED, error);
        } else {
          first.info.set_error(error);
          Persist(first);
          NotifyState(first);
        }
      }
      return;
    }
    // Posted, not called: CreateGroup may answer inside this Dispatch pass.
    boost::asio::post(io_, [this] { Dispatch(); });
  });
}

void JobManager::StartRun(Job& job, PoolGroup& group, const v1::GroupInfo& info) {
  auto run = std::make_shared<Run>();
  run->group_name = group.name;
  const int size = info.members_size();
  run->results.assign(size, absl::UnknownError("not run"));
  run->remaining = size;
  {
    absl::MutexLock lock(&run->mu);
    run->contexts.assign(size, nullptr);
    run->aborted.assign(size, false);
  }
  group.busy_job = job.info.job_id();
  group.affinity = job.plan.affinity();
  job.run = run;
  job.info.set_state(v1::JOB_RUNNING);
  job.info.set_attempts(job.info.attempts() + 1);
  run->attempt = job.info.attempts();
  job.info.set_start_unix_ms(NowMillis());
  job.info.set_group_name(group.name);
  job.info.clear_error();
  Persist(job);
  NotifyState(job);
  RL_LOG(INFO) << "job " << job.info.job_id() << " attempt " << run->attempt << " on " << group.name
               << " (incarnation " << info.incarnation() << ")";

  const std::string job_id = job.info.job_id();
  const std::string result_path = ResultPath(job_id);
  run->caller_id = absl::StrCat("job:", job_id, ":", run->attempt);
  for (const v1::GroupMember& member : info.members()) {
    if (member.rank() == 0) run->rank0_address = member.address();
    v1::CallHeader header;
    header.set_actor_id(member.actor_id());
    header.set_method(job.plan.method());
    header.set_caller_id(run->caller_id);
    header.set_seq(0);
    header.set_group_id(info.group_id());
    header.set_group_incarnation(info.incarnation());
    const int rank = member.rank();
    rpc::EventCallback on_event;
    if (rank == 0) {
      on_event = [this, job_id, run](const std::string& event) {
        boost::asio::post(io_, [this, job_id, run, event] { OnProgress(job_id, run, event); });
      };
    }
    run->threads.emplace_back([this, run, rank, header, stub = StubFor(member.address()),
                               args = job.plan.args(), on_event, job_id, result_path] {
      absl::StatusOr<std::string> result =
          rpc::CallActorOnce(*stub, token_, header, args, config_.job_timeout, on_event,
                             [run, rank](grpc::ClientContext* context) {
                               absl::MutexLock lock(&run->mu);
                               run->contexts[rank] = context;
                               if (context == nullptr) return;  // the call is over
                               if (!run->cancel_all) return;
                               run->aborted[rank] = true;
                               context->TryCancel();
                             });
      // (CallActorOnce handed the hook nullptr before its context went away.)
      // A rank that failed leaves the others waiting for it: they are aborted at once. Once rank 0
      // has its result (or the user's cancel, which the ranks agree on at the next model call),
      // the others have the grace to end. Another rank's success leaves rank 0 be: it may still
      // be writing the job's output.
      if (run->remaining.load() > 1 && !run->AbortedRank(rank)) {
        // The user's cancel ends every rank CANCELLED at the same model call: not a failure.
        const bool agreed_cancel =
            run->GracefulCancel() &&
            (rank == 0 || result.status().code() == absl::StatusCode::kCancelled);
        if (!result.ok() && !agreed_cancel) {
          run->Abort();
        } else if (rank == 0) {
          boost::asio::post(io_, [this, run] { AbortAfter(run, config_.rank_grace); });
        }
      }
      if (rank == 0 && result.ok()) {
        // Stored before the job is SUCCEEDED: a finished job always has its result.
        if (absl::Status written = WriteFileAtomically(result_path, *result); !written.ok()) {
          result = written;
        } else {
          result = std::to_string(result->size());
        }
      }
      run->results[rank] = std::move(result);
      if (run->remaining.fetch_sub(1) == 1) {
        boost::asio::post(io_, [this, job_id, run] { OnRunDone(job_id, run); });
      }
    });
  }
}

void JobManager::OnProgress(const std::string& job_id, const std::shared_ptr<Run>& run,
                            std::string event) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.run != run) return;
  Job& job = it->second;
  job.info.set_last_progress(event);
  // Kept for late watchers; previews make events large, so bytes are bounded too.
  constexpr size_t kRecentProgressEvents = 32;
  constexpr int64_t kRecentProgressBytes = 4 << 20;
  job.recent_progress.push_back(event);
  job.recent_progress_bytes += static_cast<int64_t>(event.size());
  while (job.recent_progress.size() > kRecentProgressEvents ||
         (job.recent_progress.size() > 1 && job.recent_progress_bytes > kRecentProgressBytes)) {
    job.recent_progress_bytes -= static_cast<int64_t>(job.recent_progress.front().size());
    job.recent_progress.pop_front();
  }
  v1::JobEvent progress;
  progress.set_progress(std::move(event));
  Notify(job, progress);
}

void JobManager::OnRunDone(const std::string& job_id, const std::shared_ptr<Run>& run) {
  run->Join();
  if (auto group = pool_.find(run->group_name); group != pool_.end()) {
    group->second.busy_job.clear();
    group->second.last_used = absl::Now();
  }
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.run != run) return;
  Job& job = it->second;
  job.run = nullptr;
  if (stopped_) return;  // the head is stopping: the job stays RUNNING and is requeued at start
  // The first failure, rank 0's if it failed: the one that says the most. Ranks the head aborted
  // say only that; a rank's own failure is the cause.
  const absl::Status* failure = nullptr;
  bool failure_is_own = false;
  for (size_t rank = 0; rank < run->results.size(); ++rank) {
    const auto& result = run->results[rank];
    if (result.ok()) continue;
    const bool own = !run->AbortedRank(static_cast<int>(rank));
    if (failure == nullptr || (own && !failure_is_own) || (own && rank == 0)) {
      failure = &result.status();
      failure_is_own = own;
    }
  }
  // A run that ended irregularly may have left communicators aborted or mid-collective: the
  // group is formed again before the next run (its members keep what they loaded). Regular: all
  // ranks succeeded, or all ended with the same cancel or fault of the job before any was aborted.
  const bool regular =
      failure == nullptr ||
      (!run->AnyAborted() &&
       std::all_of(run->results.begin(), run->results.end(),
                   [&](const absl::StatusOr<std::string>& result) {
                     return !result.ok() && result.status().code() == failure->code();
                   }) &&
       (failure->code() == absl::StatusCode::kCancelled || JobsFault(failure->code())));
  if (!regular) {
    head_.DissolveGroupNamed(run->group_name,
                             absl::StrCat("job ", job_id, " attempt ", run->attempt,
                                          " ended irregularly: ", failure->message()));
  }
  if (failure == nullptr) {
    int64_t bytes = 0;
    (void)absl::SimpleAtoi(*run->results.front(), &bytes);
    job.info.set_result_bytes(bytes);
    job.info.clear_last_progress();
    Finish(job, v1::JOB_SUCCEEDED, "");
  } else if (job.cancel_requested) {
    Finish(job, v1::JOB_CANCELLED, "cancelled while running");
  } else {
    const std::string error =
        absl::StrCat("attempt ", run->attempt, " on ", run->group_name, ": ",
                     absl::StatusCodeToString(failure->code()), ": ", failure->message());
    // Workers answer ABORTED when the group's communicators were aborted before this run (a head
    // that died mid-run left them so): the group was stale, the attempt not the job's failure.
    const bool stale_group =
        !run->AnyAborted() &&
        std::all_of(run->results.begin(), run->results.end(), [](const auto& result) {
          return result.ok() || result.status().code() == absl::StatusCode::kAborted;
        });
    if (!stale_group) job.info.set_failed_attempts(job.info.failed_attempts() + 1);
    if (JobsFault(failure->code()) || job.info.failed_attempts() > job.info.max_retries()) {
      Finish(job, v1::JOB_FAILED, error);
    } else {
      // A rank was lost or the group broke: run it again once a group is ready.
      job.info.set_state(v1::JOB_PENDING);
      job.info.set_error(error);
      job.not_before = absl::Now() + config_.job_retry_backoff *
                                         (1 << std::min(job.info.failed_attempts() - 1, 6));
      Persist(job);
      NotifyState(job);
      RL_LOG(WARNING) << "job " << job_id << " requeued (" << job.info.failed_attempts() << "/"
                      << job.info.max_retries() << " retries): " << error;
    }
  }
  Dispatch();
}

}  // namespace raylight::head
