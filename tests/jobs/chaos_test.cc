// The chaos suite (ctest label `chaos`): faults and races driven deliberately against a real
// cluster, each bounded in time, results compared with undisturbed runs, nothing lost or
// duplicated, counts and timings printed: workers and nodes killed (-9) and hung (SIGSTOP) mid-job,
// the head killed with jobs queued, cancels at every moment between submit and the first step,
// a job mix whose group cannot form yet, concurrent clients, and resumption from the last step.
#include "tests/jobs/jobs_fixture.h"

namespace raylight::jobs_testing {
namespace {

// A job long enough (150 steps over ~300 tokens) to be disturbed in its middle.
v1::SampleJob LongJob(v1::SampleJob job, int ulysses) {
  if (ulysses > 1) job.mutable_mesh()->set_ulysses(ulysses);
  job.set_steps(150);
  job.set_width(160);
  job.set_height(160);
  return job;
}

// The worker hosting `rank` of the READY group, from the head's view (none when there is none).
std::optional<v1::WorkerInfo> WorkerOfRank(const v1::ClusterState& state, int rank) {
  for (const auto& group : state.groups()) {
    if (group.state() != v1::GROUP_READY || group.members_size() <= rank) continue;
    for (const auto& worker : state.workers()) {
      if (worker.worker_id() == group.members(rank).worker_id()) return worker;
    }
  }
  return std::nullopt;
}

struct Disturbed {
  absl::StatusOr<v1::JobInfo> done;
  bool disturbed = false;
};

// Submits `job` and, once its progress reports step `at_step`, calls `disturb` with the worker
// hosting `rank` (on the watcher's thread); `on_progress` sees every progress event. Returns how
// the job ended and whether the disturbance happened.
Disturbed RunDisturbed(client::JobClient& jobs, testing_util::TestCluster& cluster,
                       const v1::SampleJob& job, int at_step, int rank,
                       const std::function<void(const v1::WorkerInfo&)>& disturb,
                       absl::Duration timeout,
                       const std::function<void(const v1::SampleProgress&)>& on_progress = {}) {
  auto submitted = jobs.SubmitSample(job);
  if (!submitted.ok()) return {submitted.status()};
  std::atomic<bool> disturbed{false};
  auto done = jobs.Watch(
      submitted->job_id(),
      [&](const v1::JobEvent& event) {
        v1::SampleProgress progress;
        if (!event.has_progress() || !progress.ParseFromString(event.progress())) return;
        if (on_progress) on_progress(progress);
        if (progress.step() < at_step || disturbed.load()) return;
        auto state = cluster.Connect()->ClusterState();
        ASSERT_TRUE(state.ok()) << state.status();
        auto worker = WorkerOfRank(*state, rank);
        ASSERT_TRUE(worker.has_value()) << state->DebugString();
        disturbed = true;
        disturb(*worker);
      },
      timeout);
  return {std::move(done), disturbed.load()};
}

// Issue #23, item 4: one 1-rank job running on one of two workers, then a 2-rank job and a
// 1-rank job queued. The 2-rank group cannot form until the first job ends; the head used to
// remove the 1-rank group the second job formed (to make room that was not enough) and form it
// again, ~2,000 times a second, neither job running. Now the second job runs beside the first
// and the 2-rank job follows when the workers are free.
TEST_F(JobsTest, AJobThatCannotFormYetDoesNotStarveTheOnesBehindIt) {
  v1::SampleJob long_job = Job(41);
  long_job.set_width(160);
  long_job.set_height(96);
  long_job.set_frames(17);
  long_job.set_steps(1000);
  auto running = jobs_->SubmitSample(long_job);
  ASSERT_TRUE(running.ok()) << running.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (jobs_->Get(running->job_id())->state() != v1::JOB_RUNNING && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(jobs_->Get(running->job_id())->state(), v1::JOB_RUNNING);
  v1::SampleJob wide = Job(43);
  wide.mutable_mesh()->set_ulysses(2);
  auto waiting = jobs_->SubmitSample(wide);
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  // The short 1-rank job finishes while the long one still runs.
  auto behind = jobs_->SubmitSample(Job(47));
  ASSERT_TRUE(behind.ok()) << behind.status();
  auto done = jobs_->Wait(behind->job_id(), absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString();
  EXPECT_EQ(jobs_->Get(running->job_id())->state(), v1::JOB_RUNNING);
  // Groups were formed a handful of times, not thousands.
  const std::string head_log = testing_util::ReadFileOrEmpty(dir_->path() + "/state/logs/head.log");
  size_t formations = 0;
  for (size_t at = head_log.find("forming group"); at != std::string::npos;
       at = head_log.find("forming group", at + 1)) {
    ++formations;
  }
  EXPECT_LT(formations, 10u) << "the head formed groups " << formations << " times";
  // With the long job cancelled, the 2-rank job gets its workers and runs.
  ASSERT_TRUE(jobs_->Cancel(running->job_id()).ok());
  auto wide_done = jobs_->Wait(waiting->job_id(), absl::Seconds(120));
  ASSERT_TRUE(wide_done.ok()) << wide_done.status();
  EXPECT_EQ(wide_done->state(), v1::JOB_SUCCEEDED) << wide_done->DebugString();
}

TEST_F(JobsTest, CancelStopsARunningJobAndFreesItsGroup) {
  v1::SampleJob job = Job();
  job.mutable_mesh()->set_ulysses(2);
  job.set_steps(1000);
  job.set_width(160);
  job.set_height(160);
  auto submitted = jobs_->SubmitSample(job);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  std::atomic<bool> cancelled{false};
  int last_step = 0;
  auto done = jobs_->Watch(
      submitted->job_id(),
      [&](const v1::JobEvent& event) {
        v1::SampleProgress progress;
        if (!event.has_progress() || !progress.ParseFromString(event.progress())) return;
        last_step = std::max(last_step, progress.step());
        if (progress.step() >= 2 && !cancelled.exchange(true)) {
          auto info = jobs_->Cancel(submitted->job_id());
          EXPECT_TRUE(info.ok()) << info.status();
        }
      },
      absl::Seconds(120));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::JOB_CANCELLED) << done->DebugString();
  EXPECT_LT(last_step, 1000);
  // The ranks stopped together at a model call: nothing was aborted, the group is as it was
  // (first incarnation, READY), and the next job runs on it.
  auto state = cluster_->Connect()->ClusterState();
  ASSERT_TRUE(state.ok());
  bool kept = false;
  for (const auto& group : state->groups()) {
    if (group.spec().name() != done->group_name()) continue;
    kept = group.state() == v1::GROUP_READY && group.incarnation() == 1;
  }
  EXPECT_TRUE(kept) << state->DebugString();
  v1::SampleJob next_job = Job();
  next_job.mutable_mesh()->set_ulysses(2);
  v1::JobInfo next = RunJob(next_job);
  EXPECT_EQ(next.state(), v1::JOB_SUCCEEDED) << next.DebugString();
  EXPECT_EQ(next.group_name(), done->group_name());
}

TEST_F(JobsTest, WorkerKilledMidJobIsRetriedToTheSameLatent) {
  const v1::SampleJob job = LongJob(Job(23), 2);
  // kill -9 the worker of rank 1 in the middle of the job.
  Disturbed run = RunDisturbed(
      *jobs_, *cluster_, job, /*at_step=*/3, /*rank=*/1,
      [](const v1::WorkerInfo& worker) { kill(worker.pid(), SIGKILL); }, absl::Seconds(180));
  ASSERT_TRUE(run.done.ok()) << run.done.status();
  const v1::JobInfo& done = *run.done;
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  EXPECT_TRUE(run.disturbed);
  EXPECT_EQ(done.attempts(), 2) << done.DebugString();
  EXPECT_EQ(done.failed_attempts(), 1);
  ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), Reference(job));
}

// Issue #23, item 6: a cancel right after submit reached rank 0 before its call started, and
// rank 1 waited in the rendezvous for the 300 s collective timeout, the job RUNNING and both
// workers held. Driven many times at different moments between submit and the first step:
// every cancel ends its job within seconds (the rank grace, 5 s, plus the abort), and the
// workers run the next jobs at once.
TEST_F(JobsTest, ACancelAtAnyMomentAfterSubmitEndsTheJobAndFreesTheGroup) {
  absl::Duration slowest = absl::ZeroDuration();
  for (int attempt = 0; attempt < 6; ++attempt) {
    v1::SampleJob job = Job(40 + attempt);
    job.mutable_mesh()->set_ulysses(2);
    job.set_steps(400);
    job.set_width(160);
    job.set_height(160);
    auto submitted = jobs_->SubmitSample(job);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    absl::SleepFor(absl::Milliseconds(attempt * 40));  // 0 to 200 ms: before and during the start
    const absl::Time cancelled = absl::Now();
    auto info = jobs_->Cancel(submitted->job_id());
    ASSERT_TRUE(info.ok()) << info.status();
    auto done = jobs_->Wait(submitted->job_id(), absl::Seconds(60));
    ASSERT_TRUE(done.ok()) << done.status() << cluster_->Logs();
    EXPECT_EQ(done->state(), v1::JOB_CANCELLED) << done->DebugString();
    const absl::Duration took = absl::Now() - cancelled;
    std::cout << "cancel " << attempt << " after " << attempt * 40 << " ms: ended in " << took
              << std::endl;
    slowest = std::max(slowest, took);
  }
  EXPECT_LT(slowest, absl::Seconds(20));
  // The workers are free: a one-rank and a two-rank job run now, not after a timeout.
  const absl::Time start = absl::Now();
  v1::JobInfo one = RunJob(Job(50));
  EXPECT_EQ(one.state(), v1::JOB_SUCCEEDED) << one.DebugString();
  v1::SampleJob two_ranks = Job(51);
  two_ranks.mutable_mesh()->set_ulysses(2);
  v1::JobInfo two = RunJob(two_ranks);
  EXPECT_EQ(two.state(), v1::JOB_SUCCEEDED) << two.DebugString();
  ExpectSameLatent(ReadLatent(ResultOf(two.job_id()).latent()), Reference(two_ranks));
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
}

// Issue #23, "resume, not restart": a job whose rank dies runs again from where it stopped.
// Rank 0 journals the model outputs on its node; the next run replays them through the same
// sampler (its noise and history rebuilt exactly) and computes only what is left.
class ResumeTest : public JobsTest {
 protected:
  // Kills the worker of `rank` after step 60 of the job: 1 (rank 0 keeps its journal in hand)
  // or 0 (the journal outlives its worker: the node's restarted or other worker finds it). The
  // retry must replay at least the 60 steps' model calls, and the latent equal the undisturbed
  // run's.
  void ExpectAKilledRankResumes(const v1::SampleJob& job, int rank) {
    constexpr int kKillAfter = 60;
    constexpr absl::string_view kResuming = "resuming: an earlier run of this job left ";
    std::atomic<int64_t> replayed{-1};
    Disturbed run = RunDisturbed(
        *jobs_, *cluster_, job, kKillAfter, rank,
        [](const v1::WorkerInfo& worker) { kill(worker.pid(), SIGKILL); }, absl::Seconds(240),
        [&](const v1::SampleProgress& progress) {
          if (!absl::StartsWith(progress.message(), kResuming)) return;
          const std::vector<std::string> words =
              absl::StrSplit(absl::StripPrefix(progress.message(), kResuming), ' ');
          int64_t calls = 0;
          if (!words.empty() && absl::SimpleAtoi(words.front(), &calls)) replayed = calls;
        });
    ASSERT_TRUE(run.done.ok()) << run.done.status();
    ASSERT_TRUE(run.disturbed);
    const v1::JobInfo& done = *run.done;
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    EXPECT_EQ(done.failed_attempts(), 1) << done.DebugString();
    // One model call a step here (cond and uncond batched): at least the steps before the kill.
    EXPECT_GE(replayed.load(), kKillAfter);
    std::cout << "killed rank " << rank << "'s worker after step " << kKillAfter
              << "; the retry replayed " << replayed.load() << " model calls" << std::endl;
    ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), Reference(job));
  }
};

TEST_F(ResumeTest, AJobWhoseRankDiesResumesFromItsLastStep) {
  ExpectAKilledRankResumes(LongJob(Job(61), 2), /*rank=*/1);
}

TEST_F(ResumeTest, AOneRankJobWhoseWorkerDiesResumesOnItsNode) {
  ExpectAKilledRankResumes(LongJob(Job(62), 1), /*rank=*/0);
}

class SpareWorkerJobsTest : public JobsTest {
 protected:
  void SetUp() override { Start(3); }
};

// Issue #23, item 7: a hung worker (SIGSTOP) was marked dead within the heartbeat deadline and
// its group dissolved, but the survivor's run waited for the 300 s collective timeout. Now the
// dissolution aborts the run at once, and the job runs again on the spare worker to the same
// latent.
TEST_F(SpareWorkerJobsTest, AHungWorkersRunEndsAtOnceAndIsRetriedToTheSameLatent) {
  const v1::SampleJob job = LongJob(Job(29), 2);
  std::atomic<int> stopped_pid{0};
  std::atomic<int64_t> stopped_at_ms{0};
  Disturbed run = RunDisturbed(
      *jobs_, *cluster_, job, /*at_step=*/3, /*rank=*/1,
      [&](const v1::WorkerInfo& worker) {
        stopped_pid = worker.pid();
        stopped_at_ms = absl::ToUnixMillis(absl::Now());
        kill(worker.pid(), SIGSTOP);
      },
      absl::Seconds(120));
  const absl::Duration took = absl::Now() - absl::FromUnixMillis(stopped_at_ms.load());
  if (stopped_pid.load() != 0) {
    kill(stopped_pid.load(), SIGKILL);  // a stopped process would outlive the cluster
  }
  ASSERT_TRUE(run.done.ok()) << run.done.status() << cluster_->Logs();
  ASSERT_TRUE(run.disturbed);
  const v1::JobInfo& done = *run.done;
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.attempts(), 2) << done.DebugString();
  std::cout << "stopped rank 1's worker; the job succeeded " << took << " later" << std::endl;
  // The heartbeat deadline (2 s here), the abort, and the whole job once more (~10 s on 2 cores).
  EXPECT_LT(took, absl::Seconds(60));
  ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), Reference(job));
}

class TwoNodeJobsTest : public JobsTest {
 protected:
  void SetUp() override {
    nodes_ = 2;
    Start(2);
  }
};

// Issue #23, item 5: a node crash failed the running job for good: its retries (0.2, 0.4, 0.8 s
// here) were spent on the dead workers' addresses before the heartbeat deadline marked them
// dead. Now a retry waits for the group to form again, which waits out workers the head has not
// yet seen die, and the job succeeds on the other node's workers to the same latent.
TEST_F(TwoNodeJobsTest, ANodeCrashMidJobIsRetriedOnTheOtherNode) {
  const v1::SampleJob job = LongJob(Job(31), 2);
  // kill -9 the node agent of rank 1's worker; its workers die with it (PR_SET_PDEATHSIG).
  Disturbed run = RunDisturbed(
      *jobs_, *cluster_, job, /*at_step=*/3, /*rank=*/1,
      [&](const v1::WorkerInfo& worker) {
        cluster_->node(worker.node_id() == "node0" ? 0 : 1).Kill();
      },
      absl::Seconds(180));
  ASSERT_TRUE(run.done.ok()) << run.done.status() << cluster_->Logs();
  ASSERT_TRUE(run.disturbed);
  const v1::JobInfo& done = *run.done;
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.failed_attempts(), 1) << done.DebugString();
  ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), Reference(job));
}

TEST_F(JobsTest, QueuedJobsSurviveAHeadKill) {
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    v1::SampleJob job = Job(100 + i);
    job.set_steps(20);  // ~0.3 s each: most are still queued when the head dies
    job.set_width(160);
    job.set_height(160);
    auto submitted = jobs_->SubmitSample(job);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    ids.push_back(submitted->job_id());
  }
  cluster_->KillHead();
  absl::Status restarted = cluster_->StartHead(cluster_->port());
  ASSERT_TRUE(restarted.ok()) << restarted;
  auto after_restart = jobs_->List({v1::JOB_PENDING, v1::JOB_RUNNING});
  ASSERT_TRUE(after_restart.ok()) << after_restart.status();
  EXPECT_GT(after_restart->size(), 0u);  // the kill really interrupted queued work
  std::set<std::string> latents;
  for (const std::string& id : ids) {
    auto done = jobs_->Wait(id, absl::Seconds(120));
    ASSERT_TRUE(done.ok()) << id << ": " << done.status();
    EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString();
    // The run the kill interrupted is requeued, and the group its workers aborted is formed
    // again: neither counts against the job.
    EXPECT_EQ(done->failed_attempts(), 0) << done->DebugString();
    latents.insert(ResultOf(id).latent());
  }
  EXPECT_EQ(latents.size(), ids.size());  // twenty seeds, twenty different results
  auto all = jobs_->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), ids.size());  // none lost, none duplicated
}

class ConcurrentJobsTest : public JobsTest {
 protected:
  void SetUp() override { Start(2); }

  std::vector<std::string> extra_head_args_;  // appended to the head's flags by Start
};

TEST_F(ConcurrentJobsTest, SixteenClientsTenJobsEach) {
  constexpr int kClients = 16, kJobsEach = 10, kSeeds = 4;
  std::mutex mu;
  std::map<uint64_t, std::set<std::string>> latents_by_seed;
  std::set<std::string> job_ids;
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      client::ClientOptions options;
      options.address = cluster_->address();
      options.token = kToken;
      options.dedicated_channels = true;
      auto jobs = client::JobClient::Connect(options);
      if (!jobs.ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < kJobsEach; ++i) {
        v1::SampleJob job = Job((c * kJobsEach + i) % kSeeds);
        job.set_steps(2);
        job.set_cfg(1.0);
        job.clear_negative();
        job.set_width(32);
        job.set_height(32);
        job.set_frames(1);
        auto submitted = (*jobs)->SubmitSample(job);
        if (!submitted.ok()) {
          ++failures;
          continue;
        }
        auto done = (*jobs)->Wait(submitted->job_id(), absl::Seconds(240));
        auto result = (*jobs)->SampleResult(submitted->job_id());
        if (!done.ok() || done->state() != v1::JOB_SUCCEEDED || done->attempts() != 1 ||
            !result.ok()) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        job_ids.insert(submitted->job_id());
        latents_by_seed[job.seed()].insert(result->latent());
      }
    });
  }
  for (auto& thread : clients) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(job_ids.size(), static_cast<size_t>(kClients * kJobsEach));
  // Every job of a seed gave that seed's latent, whichever group ran it; seeds differ.
  ASSERT_EQ(latents_by_seed.size(), static_cast<size_t>(kSeeds));
  std::set<std::string> distinct;
  for (const auto& [seed, latents] : latents_by_seed) {
    EXPECT_EQ(latents.size(), 1u) << "seed " << seed;
    distinct.insert(*latents.begin());
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kSeeds));
  auto all = jobs_->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), static_cast<size_t>(kClients * kJobsEach));
}

}  // namespace
}  // namespace raylight::jobs_testing
