// The fixture of the end-to-end job tests (jobs_test.cc, chaos_test.cc): every part a real
// process on real ports: a head with a model root, one or more nodes with CPU workers (one
// worker per GPU in the GPU build) hosting DiffusionActors, a tiny Wan checkpoint and
// conditioning written by the project's tools, the SDK submitting and watching. Results are
// compared against raylight-sample-local, one process sampling the same inputs without the
// cluster.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/sdk/job_client.h"
#include "models/core/png.h"
#include "models/core/safetensors.h"
#include "models/wan/wan_config.h"
#include "runtime/common/gpu_info.h"
#include "runtime/rpc/call_transport.h"
#include "tests/util/cluster.h"
#include "tests/util/latent_values.h"
#include "tests/util/read_file.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::jobs_testing {

namespace fs = std::filesystem;

using testing_util::RunToCompletion;

inline const std::string kBin = RAYLIGHT_BIN_DIR;
constexpr char kToken[] = "jobs-test-token";

using Latent = testing_util::LatentValues;
using testing_util::MaxAbsDiff;
inline Latent ReadLatent(const std::string& bytes) { return testing_util::ReadLatentValues(bytes); }

#ifdef RAYLIGHT_TEST_GPU
// GPU workers (NCCL groups, bf16) against one GPU: a real preset's shapes (1.3B: 12 heads of
// 128) with two blocks.
constexpr bool kGpu = true;
constexpr const char* kPreset = "wan2.1-t2v-1.3b";
#else
constexpr bool kGpu = false;
constexpr const char* kPreset = "tiny-t2v";
#endif

// The cluster's latent against the single-process one: fp32 on the CPU to 1e-4; bf16 on GPUs
// to a relative L2 of 1e-2 (the project's two standards).
// The "images" bytes of a frames file (ComfyUI's IMAGE, uint8) and its [F, H, W, 3] shape.
inline std::pair<std::string, std::vector<int64_t>> FrameBytes(const std::string& path) {
  auto file = models::SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return {};
  const models::StTensorInfo* images = (*file)->header().Find("images");
  EXPECT_NE(images, nullptr) << path;
  if (images == nullptr) return {};
  return {std::string((*file)->Bytes(*images)), images->shape};
}

inline void ExpectSameLatent(const Latent& got, const Latent& want) {
  ASSERT_FALSE(want.values.empty());
  if (kGpu) {
    EXPECT_LT(testing_util::RelativeL2(got, want), 1e-2);
  } else {
    EXPECT_LT(MaxAbsDiff(got, want), 1e-4);
  }
}

// Whether a job's progress messages say its model was warmed at the job's shape
// (actors/diffusion/sampling_run.h, WarmUpAtShape).
inline bool Warmed(const std::vector<v1::JobEvent>& events) {
  for (const v1::JobEvent& event : events) {
    v1::SampleProgress progress;
    if (event.has_progress() && progress.ParseFromString(event.progress()) &&
        progress.message().find("at the job's shape (one block)") != std::string::npos) {
      return true;
    }
  }
  return false;
}

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(2); }

  std::vector<std::string> extra_head_args_;   // appended to the head's flags by Start
  std::string head_binary_ = "raylight-head";  // the test's own head and worker builds
  std::string worker_binary_;
  int nodes_ = 1;  // Start(workers) starts `workers` on each

  void Start(int workers) {
    if (kGpu) {
      // Every GPU job test forms 2-rank groups: on a smaller machine it skips at once rather
      // than wait for workers that never come.
      const size_t gpus = DiscoverGpus().size();
      if (gpus < 2) GTEST_SKIP() << "needs two GPUs; this machine has " << gpus;
    }
    dir_ = std::make_unique<testing_util::TempDir>("jobs-test");
    models_ = dir_->path() + "/models";
    fs::create_directories(models_);
    // A fresh random checkpoint and prompts every run.
    seed_ = std::random_device()() % 100000;
    ASSERT_TRUE(MakeCheckpoint("tiny.safetensors", 2, seed_).ok());
    for (auto [name, tokens] : {std::pair{"positive", 7}, std::pair{"negative", 3}}) {
      ASSERT_TRUE(RunToCompletion(
                      {kBin + "/raylight-make-conditioning", absl::StrCat("--preset=", kPreset),
                       absl::StrCat("--tokens=", tokens), absl::StrCat("--seed=", seed_ + tokens),
                       "--out=" + dir_->path() + "/" + name + ".safetensors"},
                      dir_->path() + "/make.log", std::chrono::seconds(120))
                      .ok());
    }
    if (kGpu) {
      // Two GPUs whatever the machine has: a 2-rank group then has nowhere else to go.
      setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
      if (model_memory_limit_checkpoints_ > 0) {
        const double bytes = static_cast<double>(fs::file_size(models_ + "/tiny.safetensors"));
        setenv("RAYLIGHT_MODEL_MEMORY_MIB",
               absl::StrCat(static_cast<int64_t>(bytes * model_memory_limit_checkpoints_) >> 20)
                   .c_str(),
               1);
      } else {
        unsetenv("RAYLIGHT_MODEL_MEMORY_MIB");
      }
    }
    testing_util::ClusterOptions options;
    options.nodes = nodes_;
    options.cpu_workers_per_node = kGpu ? 0 : workers;
    options.gpu = kGpu;  // one worker per GPU
    options.token = kToken;
    options.model_roots = {models_};
    options.head_args = {"--job-retry-backoff-ms=200"};
    options.head_args.insert(options.head_args.end(), extra_head_args_.begin(),
                             extra_head_args_.end());
    options.head_binary = head_binary_;
    options.worker_binary = worker_binary_;
    cluster_ = std::make_unique<testing_util::TestCluster>(kBin, dir_->path() + "/state", options);
    absl::Status started = cluster_->Start();
    ASSERT_TRUE(started.ok()) << started;
    if (kGpu) {  // GPU workers register after the node has found the GPUs
      auto state = cluster_->Connect()->WaitCluster(1, 2, absl::Seconds(120));
      ASSERT_TRUE(state.ok()) << state.status() << cluster_->Logs();
    }
    client::ClientOptions client_options;
    client_options.address = cluster_->address();
    client_options.token = kToken;
    auto jobs = client::JobClient::Connect(client_options);
    ASSERT_TRUE(jobs.ok());
    jobs_ = *std::move(jobs);
  }

  // A random checkpoint of the test's preset in the model root.
  absl::Status MakeCheckpoint(const std::string& name, int layers, uint64_t seed) const {
    return RunToCompletion({kBin + "/raylight-make-checkpoint", absl::StrCat("--preset=", kPreset),
                            absl::StrCat("--layers=", layers), "--dtype=bf16",
                            absl::StrCat("--seed=", seed), "--out=" + models_ + "/" + name},
                           dir_->path() + "/make.log", std::chrono::seconds(120));
  }

  // A tiny random umT5 (48 wide, the tiny presets' text width) in the root's text_encoders/,
  // its tokenizer trained on the spot; returns its path ("" after a failure).
  // Runs each command to completion in turn; the first failure comes with its log.
  absl::Status RunTools(const std::vector<std::vector<std::string>>& argvs,
                        const std::string& log_name, std::chrono::seconds timeout) {
    const std::string log = dir_->path() + "/" + log_name;
    for (const std::vector<std::string>& argv : argvs) {
      const absl::Status ran = RunToCompletion(argv, log, timeout);
      if (!ran.ok()) {
        return absl::Status(ran.code(),
                            absl::StrCat(ran.message(), "\n", testing_util::ReadFileOrEmpty(log)));
      }
    }
    return absl::OkStatus();
  }

  // raylight-encode-text on `prompt` and on Wan's default negative prompt, with `args` (the
  // images and their encoders): <prefix>-positive.safetensors and <prefix>-negative.safetensors.
  absl::Status EncodePrompts(const std::string& encoder, const std::string& prompt,
                             const std::string& prefix, const std::vector<std::string>& args) {
    std::vector<std::vector<std::string>> argvs;
    for (auto [side, flag] : {std::pair<std::string, std::string>{"positive", "--prompt=" + prompt},
                              {"negative", "--wan-default-negative"}}) {
      std::vector<std::string> argv = {
          kBin + "/raylight-encode-text", "--text-encoder=" + encoder, flag,
          "--out=" + dir_->path() + "/" + prefix + "-" + side + ".safetensors"};
      argv.insert(argv.end(), args.begin(), args.end());
      argvs.push_back(std::move(argv));
    }
    return RunTools(argvs, "encode.log", std::chrono::seconds(120));
  }

  // A PNG of random pixels (from the test's seed) at dir/start.png; its bytes.
  std::string WriteRandomPng(int width, int height) {
    std::mt19937 random(seed_);
    models::RgbImage image;
    image.width = width;
    image.height = height;
    for (int i = 0; i < width * height * 3; ++i) image.pixels.push_back(random() % 256);
    auto png = models::EncodePng(image);
    EXPECT_TRUE(png.ok()) << png.status();
    if (!png.ok()) return "";
    std::ofstream(dir_->path() + "/start.png", std::ios::binary) << *png;
    return *png;
  }

  std::string MakeTinyUmt5() {
    const std::string encoders = models_ + "/text_encoders";
    fs::create_directories(encoders);
    const std::string encoder = encoders + "/umt5_tiny.safetensors";
    std::ofstream(dir_->path() + "/texts.json") << "[\"a fox\"]";
    std::ofstream(dir_->path() + "/umt5.json")
        << R"({"vocab": 300, "dim": 48, "heads": 4, "head_dim": 12, "ffn": 64, "layers": 2})";
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"tokenizer", "--out-dir=" + dir_->path(),
                                   "--texts=" + dir_->path() + "/texts.json"},
          std::vector<std::string>{"model", "--config=" + dir_->path() + "/umt5.json",
                                   absl::StrCat("--seed=", seed_), "--spelling=hf",
                                   "--spiece=" + dir_->path() + "/spiece.model", "--out=" + encoder,
                                   "--expected=" + dir_->path() + "/umt5-expected.safetensors"}}) {
      std::vector<std::string> argv = {RAYLIGHT_TEST_PYTHON, RAYLIGHT_UMT5_REFERENCE};
      argv.insert(argv.end(), args.begin(), args.end());
      const absl::Status made =
          RunToCompletion(argv, dir_->path() + "/umt5.log", std::chrono::seconds(300));
      EXPECT_TRUE(made.ok()) << made << testing_util::ReadFileOrEmpty(dir_->path() + "/umt5.log");
      if (!made.ok()) return "";
    }
    return encoder;
  }

  // `job` changed by `edit` is refused at submission: InvalidArgument naming `field`.
  void ExpectRefusedNaming(const v1::SampleJob& job, const std::string& field,
                           const std::function<void(v1::SampleJob&)>& edit) {
    v1::SampleJob bad = job;
    edit(bad);
    auto refused = jobs_->SubmitSample(bad);
    ASSERT_FALSE(refused.ok()) << field;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
    EXPECT_NE(refused.status().message().find(field), std::string::npos) << refused.status();
  }

  void TearDown() override {
    if (HasFailure() && cluster_ != nullptr) std::cerr << cluster_->Logs();
  }

  // 80 x 48 x 9 frames: a 3 x 6 x 10 latent, 45 tokens — odd, so Ulysses 2 pads.
  v1::SampleJob Job(uint64_t seed = 11) const {
    v1::SampleJob job;
    job.set_model("tiny.safetensors");
    job.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/positive.safetensors"));
    job.set_negative(testing_util::ReadFileOrEmpty(dir_->path() + "/negative.safetensors"));
    job.set_width(80);
    job.set_height(48);
    job.set_frames(9);
    job.set_steps(4);
    job.set_cfg(3.0);
    job.set_sampler("euler_ancestral");
    job.set_seed(seed);
    return job;
  }

  Latent Reference(const v1::SampleJob& job) {
    const std::string out = absl::StrCat(dir_->path(), "/reference-", job.seed(), ".latent");
    std::vector<std::string> argv = {kBin + "/raylight-sample-local",
                                     "--checkpoint=" + models_ + "/" + job.model(),
                                     "--cond=" + dir_->path() + "/positive.safetensors",
                                     "--negative=" + dir_->path() + "/negative.safetensors",
                                     absl::StrCat("--width=", job.width()),
                                     absl::StrCat("--height=", job.height()),
                                     absl::StrCat("--frames=", job.frames()),
                                     absl::StrCat("--steps=", job.steps()),
                                     absl::StrCat("--cfg=", job.cfg()),
                                     "--sampler=" + job.sampler(),
                                     absl::StrCat("--seed=", job.seed()),
                                     "--out=" + out,
                                     kGpu ? "--device=cuda" : "--device=cpu",
                                     kGpu ? "--dtype=bf16" : "--dtype=f32"};
    if (job.compute() == "fp8") argv.push_back("--fp8-compute");
    if (job.cache().kind() == "easycache") {  // the same evaluations reused
      argv.push_back(absl::StrCat("--easycache-threshold=", job.cache().threshold()));
      if (job.cache().has_start_percent()) {
        argv.push_back(absl::StrCat("--easycache-start-percent=", job.cache().start_percent()));
      }
      if (job.cache().has_end_percent()) {
        argv.push_back(absl::StrCat("--easycache-end-percent=", job.cache().end_percent()));
      }
    }
    if (job.cache().kind() == "teacache") {  // the same step caching
      argv.push_back("--teacache");
      argv.push_back(absl::StrCat("--teacache-threshold=", job.cache().threshold()));
      if (job.cache().coefficients_size() > 0) {
        argv.push_back(absl::StrCat("--teacache-coefficients=",
                                    absl::StrJoin(job.cache().coefficients(), ",")));
      }
      if (job.cache().has_retention_steps() && !job.cache().retention_steps()) {
        argv.push_back("--teacache-plain");
      }
    }
    if (job.cache().kind() == "magcache") {  // the same schedule, with the job's own ratios
      argv.push_back(
          absl::StrCat("--magcache-ratios=", absl::StrJoin(job.cache().mag_ratios(), ",")));
      argv.push_back(absl::StrCat("--magcache-threshold=", job.cache().threshold()));
      argv.push_back(absl::StrCat("--magcache-max-skips=", job.cache().max_skips()));
      if (job.cache().has_retention_ratio()) {
        argv.push_back(absl::StrCat("--magcache-retention-ratio=", job.cache().retention_ratio()));
      }
    }
    absl::Status ran =
        RunToCompletion(argv, dir_->path() + "/reference.log", std::chrono::seconds(300));
    EXPECT_TRUE(ran.ok()) << ran << testing_util::ReadFileOrEmpty(dir_->path() + "/reference.log");
    return ReadLatent(testing_util::ReadFileOrEmpty(out));
  }

  // Submits and waits; returns the finished job.
  v1::JobInfo RunJob(const v1::SampleJob& job, std::vector<v1::JobEvent>* events = nullptr) {
    auto submitted = jobs_->SubmitSample(job);
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    if (!submitted.ok()) return {};
    auto done = jobs_->Watch(
        submitted->job_id(),
        [&](const v1::JobEvent& event) {
          if (events != nullptr) events->push_back(event);
        },
        absl::Seconds(120));
    EXPECT_TRUE(done.ok()) << done.status();
    return done.ok() ? *done : v1::JobInfo();
  }

  v1::SampleResult ResultOf(const std::string& job_id) {
    auto result = jobs_->SampleResult(job_id);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : v1::SampleResult();
  }

  // ComfyUI's KSamplerAdvanced pattern as two jobs: `job` up to step `split` keeping its
  // leftover noise, then from that LATENT without new noise on `second_model` (empty: the same
  // model). Returns the first half's and the second half's LATENTs.
  std::pair<Latent, Latent> RunChained(const v1::SampleJob& job, int split,
                                       const std::string& second_model = "") {
    v1::SampleJob first = job;
    first.set_end_step(split);
    first.set_return_with_leftover_noise(true);
    v1::JobInfo first_done = RunJob(first);
    EXPECT_EQ(first_done.state(), v1::JOB_SUCCEEDED) << first_done.DebugString();
    const std::string first_latent = ResultOf(first_done.job_id()).latent();
    v1::SampleJob second = job;
    if (!second_model.empty()) second.set_model(second_model);
    second.set_latent(first_latent);
    second.set_add_noise(false);
    second.set_start_step(split);
    v1::JobInfo second_done = RunJob(second);
    EXPECT_EQ(second_done.state(), v1::JOB_SUCCEEDED) << second_done.DebugString();
    return {ReadLatent(first_latent), ReadLatent(ResultOf(second_done.job_id()).latent())};
  }

  std::unique_ptr<testing_util::TempDir> dir_;
  std::string models_;
  double model_memory_limit_checkpoints_ = 0;  // GPU workers' model memory, in checkpoints
  uint64_t seed_ = 0;
  std::unique_ptr<testing_util::TestCluster> cluster_;
  std::unique_ptr<client::JobClient> jobs_;
};

}  // namespace raylight::jobs_testing
