// The job path's own cost (issue #7), on a real cluster: raylight-head with a model root, one
// raylight-node, workers hosting DiffusionActors, the SDK submitting. Prints one JSON line per row.
//
// CPU (default; two CPU workers, a tiny Wan checkpoint written here):
//   job_dispatch_ms   submit -> the first step begins, model resident: the moment the client sees
//                     step 1's progress, less that step's own time as the worker measured it
//                     (median of --dispatch_jobs one-rank jobs, one at a time; a job that ended
//                     before its watch began is left out)
//   tiny_jobs_per_s   one-step 32x32 jobs submitted by 8 clients at once, finished per second
// GPU (--gpu --checkpoint=FILE --preset=NAME; one worker per GPU):
//   <name>_job_e2e_overhead_ratio   submit -> result bytes at the client, over the sum of the
//                     job's step times (the last step's elapsed time as rank 0 measured it), for
//                     a job on a model already resident on its group
//
//   job_bench                                    (CPU rows)
//   job_bench --gpu --checkpoint=/tmp/wan14b.safetensors --preset=wan2.1-t2v-14b
//       --name=wan14b_832x480x81 --width=832 --height=480 --frames=81 --steps=8 --mesh=ulysses=2
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/sdk/job_client.h"
#include "tests/util/cluster.h"
#include "tests/util/read_file.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

ABSL_FLAG(bool, gpu, false, "GPU workers and the end-to-end row instead of the CPU rows");
ABSL_FLAG(std::string, checkpoint, "", "GPU: the Wan checkpoint (its directory is the model root)");
ABSL_FLAG(std::string, preset, "wan2.1-t2v-14b", "GPU: the checkpoint's preset (conditioning)");
ABSL_FLAG(std::string, name, "wan14b_832x480x81", "GPU: the row names' prefix");
ABSL_FLAG(int, width, 832, "GPU: job width");
ABSL_FLAG(int, height, 480, "GPU: job height");
ABSL_FLAG(int, frames, 81, "GPU: job frames");
ABSL_FLAG(int, steps, 8, "GPU: job steps");
ABSL_FLAG(std::string, mesh, "ulysses=2", "GPU: the job's mesh (axis=degree,...)");
ABSL_FLAG(int, dispatch_jobs, 40, "CPU: jobs timed one at a time for job_dispatch_ms");
ABSL_FLAG(int, throughput_jobs, 400, "CPU: jobs for tiny_jobs_per_s");

namespace raylight {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBin = RAYLIGHT_BIN_DIR;

void Emit(const std::string& name, double value, const std::string& unit) {
  std::cout << absl::StrFormat("{\"name\": \"%s\", \"value\": %.3f, \"unit\": \"%s\"}\n", name,
                               value, unit)
            << std::flush;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

absl::Status Make(const std::vector<std::string>& argv, const std::string& log) {
  return testing_util::RunToCompletion(argv, log, std::chrono::seconds(600));
}

absl::Status ParseMesh(const std::string& text, v1::MeshSpec* mesh) {
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    int degree = 0;
    if (!absl::SimpleAtoi(kv.second, &degree)) {
      return absl::InvalidArgumentError(absl::StrCat("mesh: bad '", part, "'"));
    }
    if (kv.first == "ulysses")
      mesh->set_ulysses(degree);
    else if (kv.first == "ring")
      mesh->set_ring(degree);
    else if (kv.first == "cfg")
      mesh->set_cfg(degree);
    else if (kv.first == "dp")
      mesh->set_dp(degree);
    else
      return absl::InvalidArgumentError(absl::StrCat("mesh: unknown axis '", kv.first, "'"));
  }
  return absl::OkStatus();
}

struct Timed {
  double client_ms_to_first_step = -1;  // submit -> step 1's progress at the client
  double first_step_ms = -1;            // step 1's own time, as the worker measured it
  double steps_ms = -1;                 // the last step's elapsed time (sum of the step times)
  double e2e_ms = -1;                   // submit -> result bytes at the client
  std::vector<double> step_ms;          // each step's own time
};

// Submits `job`, watches it to the end, fetches the result.
absl::StatusOr<Timed> RunTimed(client::JobClient& jobs, const v1::SampleJob& job) {
  Timed timed;
  const auto start = Clock::now();
  auto submitted = jobs.SubmitSample(job);
  if (!submitted.ok()) return submitted.status();
  auto done = jobs.Watch(submitted->job_id(), [&](const v1::JobEvent& event) {
    v1::SampleProgress progress;
    if (!event.has_progress() || !progress.ParseFromString(event.progress())) return;
    if (progress.step() == 1 && timed.client_ms_to_first_step < 0) {
      timed.client_ms_to_first_step = MsSince(start);
      timed.first_step_ms = progress.elapsed_seconds() * 1000;
    }
    if (progress.step() > 0) {
      const double elapsed = progress.elapsed_seconds() * 1000;
      timed.step_ms.push_back(elapsed - std::max(0.0, timed.steps_ms));
      timed.steps_ms = elapsed;
    }
  });
  if (!done.ok()) return done.status();
  if (done->state() != v1::JOB_SUCCEEDED) {
    return absl::InternalError(
        absl::StrCat("job ended ", v1::JobState_Name(done->state()), ": ", done->error()));
  }
  auto result = jobs.SampleResult(submitted->job_id());
  if (!result.ok()) return result.status();
  timed.e2e_ms = MsSince(start);
  if (result->latent().empty()) return absl::InternalError("empty latent");
  return timed;
}

absl::Status Wait(client::JobClient& jobs, absl::StatusOr<v1::JobInfo> submitted) {
  if (!submitted.ok()) return submitted.status();
  auto done = jobs.Wait(submitted->job_id(), absl::Minutes(20));
  if (!done.ok()) return done.status();
  if (done->state() != v1::JOB_SUCCEEDED) {
    return absl::InternalError(absl::StrCat("job ", submitted->job_id(), " ended ",
                                            v1::JobState_Name(done->state()), ": ", done->error()));
  }
  return absl::OkStatus();
}

struct Setup {
  std::unique_ptr<testing_util::TempDir> dir;
  std::unique_ptr<testing_util::TestCluster> cluster;
  std::unique_ptr<client::JobClient> jobs;
  v1::SampleJob job;  // model and prompts filled in
};

absl::Status StartCluster(Setup& setup, const std::string& model_root, bool gpu) {
  testing_util::ClusterOptions options;
  options.nodes = 1;
  options.cpu_workers_per_node = gpu ? 0 : 2;
  options.gpu = gpu;
  options.heartbeat_ms = 1000;
  options.deadline_ms = 5000;
  options.model_roots = {model_root};
  setup.cluster =
      std::make_unique<testing_util::TestCluster>(kBin, setup.dir->path() + "/state", options);
  if (auto status = setup.cluster->Start(); !status.ok()) return status;
  if (gpu) {
    auto state = setup.cluster->Connect()->WaitCluster(1, 2, absl::Seconds(120));
    if (!state.ok()) return state.status();
  }
  client::ClientOptions client_options;
  client_options.address = setup.cluster->address();
  auto jobs = client::JobClient::Connect(client_options);
  if (!jobs.ok()) return jobs.status();
  setup.jobs = *std::move(jobs);
  return absl::OkStatus();
}

absl::Status MakeConditioning(Setup& setup, const std::string& preset) {
  const std::string log = setup.dir->path() + "/make.log";
  for (auto [name, tokens] : {std::pair{"positive", 24}, std::pair{"negative", 12}}) {
    const std::string path = setup.dir->path() + "/" + name + ".safetensors";
    if (auto status = Make({kBin + "/raylight-make-conditioning", "--preset=" + preset,
                            absl::StrCat("--tokens=", tokens), "--out=" + path},
                           log);
        !status.ok()) {
      return status;
    }
  }
  setup.job.set_positive(
      testing_util::ReadFileOrEmpty(setup.dir->path() + "/positive.safetensors"));
  setup.job.set_negative(
      testing_util::ReadFileOrEmpty(setup.dir->path() + "/negative.safetensors"));
  return absl::OkStatus();
}

int Fail(const absl::Status& status, Setup* setup = nullptr) {
  std::cerr << "job_bench: " << status << "\n";
  if (setup != nullptr && setup->cluster != nullptr) std::cerr << setup->cluster->Logs();
  return 1;
}

int RunCpu() {
  Setup setup;
  setup.dir = std::make_unique<testing_util::TempDir>("job-bench");
  const std::string models = setup.dir->path() + "/models";
  fs::create_directories(models);
  if (auto status = Make({kBin + "/raylight-make-checkpoint", "--preset=tiny-t2v", "--layers=2",
                          "--out=" + models + "/tiny.safetensors"},
                         setup.dir->path() + "/make.log");
      !status.ok()) {
    return Fail(status);
  }
  if (auto status = MakeConditioning(setup, "tiny-t2v"); !status.ok()) return Fail(status);
  if (auto status = StartCluster(setup, models, false); !status.ok()) return Fail(status, &setup);
  // The smallest job there is: one step of a 4x4 latent, no CFG, on one rank.
  v1::SampleJob& job = setup.job;
  job.set_model("tiny.safetensors");
  job.clear_negative();
  job.set_width(32);
  job.set_height(32);
  job.set_frames(1);
  job.set_steps(1);
  job.set_cfg(1.0);
  // Both workers load the model first: every timed job then finds it resident.
  v1::SampleJob load = job;
  load.mutable_mesh()->set_dp(2);
  if (auto status = Wait(*setup.jobs, setup.jobs->SubmitLoad(load)); !status.ok()) {
    return Fail(status, &setup);
  }
  std::vector<double> dispatch, roundtrip;
  for (int i = 0; i < absl::GetFlag(FLAGS_dispatch_jobs) + 1; ++i) {
    job.set_seed(i);
    auto timed = RunTimed(*setup.jobs, job);
    if (!timed.ok()) return Fail(timed.status(), &setup);
    if (i == 0) continue;  // warm-up: the first forward on each worker
    roundtrip.push_back(timed->e2e_ms);
    // A job can finish before the watch that follows its submit is in place: then its step-1
    // event was never seen, and it says nothing about dispatch.
    if (timed->client_ms_to_first_step < 0) continue;
    dispatch.push_back(timed->client_ms_to_first_step - timed->first_step_ms);
  }
  if (dispatch.size() < roundtrip.size() / 2) {
    return Fail(absl::InternalError(absl::StrCat("only ", dispatch.size(), " of ", roundtrip.size(),
                                                 " jobs showed step 1 to their watch")),
                &setup);
  }
  std::cerr << "job_dispatch_ms from " << dispatch.size() << " of " << roundtrip.size()
            << " jobs\n";
  Emit("job_dispatch_ms", Median(dispatch), "ms");
  Emit("tiny_job_roundtrip_ms", Median(roundtrip), "ms");

  constexpr int kClients = 8;
  const int total = absl::GetFlag(FLAGS_throughput_jobs);
  std::atomic<int> next{0}, failures{0};
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      client::ClientOptions options;
      options.address = setup.cluster->address();
      options.dedicated_channels = true;
      auto jobs = client::JobClient::Connect(options);
      if (!jobs.ok()) {
        ++failures;
        return;
      }
      for (int i = next++; i < total; i = next++) {
        v1::SampleJob mine = job;
        mine.set_seed(1000 + i);
        if (!Wait(**jobs, (*jobs)->SubmitSample(mine)).ok()) ++failures;
      }
    });
  }
  for (auto& thread : clients) thread.join();
  const double seconds = MsSince(start) / 1000;
  if (failures > 0) return Fail(absl::InternalError(absl::StrCat(failures.load(), " jobs failed")));
  Emit("tiny_jobs_per_s", total / seconds, "per_s");
  return 0;
}

int RunGpu() {
  Setup setup;
  setup.dir = std::make_unique<testing_util::TempDir>("job-bench");
  const fs::path checkpoint = absl::GetFlag(FLAGS_checkpoint);
  if (!fs::exists(checkpoint)) {
    return Fail(absl::InvalidArgumentError("checkpoint: --checkpoint names no file"));
  }
  if (auto status = MakeConditioning(setup, absl::GetFlag(FLAGS_preset)); !status.ok()) {
    return Fail(status);
  }
  if (auto status = StartCluster(setup, checkpoint.parent_path().string(), true); !status.ok()) {
    return Fail(status, &setup);
  }
  v1::SampleJob& job = setup.job;
  job.set_model(checkpoint.filename().string());
  job.set_width(absl::GetFlag(FLAGS_width));
  job.set_height(absl::GetFlag(FLAGS_height));
  job.set_frames(absl::GetFlag(FLAGS_frames));
  job.set_steps(absl::GetFlag(FLAGS_steps));
  job.set_cfg(5.0);
  job.set_sampler("euler");
  job.set_seed(42);
  if (auto status = ParseMesh(absl::GetFlag(FLAGS_mesh), job.mutable_mesh()); !status.ok()) {
    return Fail(status);
  }
  const auto load_start = Clock::now();
  if (auto status = Wait(*setup.jobs, setup.jobs->SubmitLoad(job)); !status.ok()) {
    return Fail(status, &setup);
  }
  const std::string name = absl::GetFlag(FLAGS_name);
  Emit(name + "_job_load_s", MsSince(load_start) / 1000, "s");
  auto timed = RunTimed(*setup.jobs, job);
  if (!timed.ok()) return Fail(timed.status(), &setup);
  Emit(name + "_job_e2e_ms", timed->e2e_ms, "ms");
  Emit(name + "_job_step_ms", timed->steps_ms / job.steps(), "ms");
  // The first step carries the first-call costs (kernel selection, allocator growth).
  Emit(name + "_job_first_step_ms", timed->step_ms.front(), "ms");
  Emit(name + "_job_later_step_ms",
       Median(std::vector<double>(timed->step_ms.begin() + 1, timed->step_ms.end())), "ms");
  Emit(name + "_job_e2e_overhead_ratio", timed->e2e_ms / timed->steps_ms, "x");
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return absl::GetFlag(FLAGS_gpu) ? raylight::RunGpu() : raylight::RunCpu();
}
