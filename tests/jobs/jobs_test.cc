// Sampling jobs end to end, every part a real process on real ports: a head with a model root,
// one node with CPU workers hosting DiffusionActors, a tiny Wan checkpoint and conditioning
// written by the project's tools, the SDK submitting and watching. Compared against
// raylight-sample-local, one process sampling the same inputs without the cluster.
#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "models/core/mag_cache.h"
#include "tests/jobs/jobs_fixture.h"

namespace raylight::jobs_testing {
namespace {

// EasyCache's threshold in the tests: one that reuses some of the tiny model's steps.
constexpr double kEasyCacheThreshold = 1.0;

TEST_F(JobsTest, UlyssesJobThroughTheHeadMatchesOneProcess) {
  v1::SampleJob job = Job();
  job.mutable_mesh()->set_ulysses(2);
  job.set_preview_every(2);
  std::vector<v1::JobEvent> events;
  v1::JobInfo done = RunJob(job, &events);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.attempts(), 1);
  const v1::SampleResult result = ResultOf(done.job_id());
  const Latent got = ReadLatent(result.latent());
  EXPECT_EQ(got.shape, (std::vector<int64_t>{1, 16, 3, 6, 10}));
  ExpectSameLatent(got, Reference(job));
  EXPECT_FALSE(result.preview_png().empty());
  EXPECT_EQ(result.preview_png().substr(1, 3), "PNG");
  // Progress: every step once, in order, after the load message.
  std::vector<int> steps;
  bool loaded_message = false;
  for (const v1::JobEvent& event : events) {
    if (!event.has_progress()) continue;
    v1::SampleProgress progress;
    ASSERT_TRUE(progress.ParseFromString(event.progress()));
    if (progress.step() > 0) {
      steps.push_back(progress.step());
      EXPECT_EQ(progress.total(), 4);
    } else if (progress.message().find("loaded") != std::string::npos) {
      loaded_message = true;
    }
  }
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_TRUE(loaded_message);
}

TEST_F(JobsTest, SecondJobFindsTheModelResident) {
  v1::SampleJob job = Job();
  job.mutable_mesh()->set_ulysses(2);
  std::vector<v1::JobEvent> first_events, second_events, larger_events;
  v1::JobInfo first = RunJob(job, &first_events);
  ASSERT_EQ(first.state(), v1::JOB_SUCCEEDED) << first.DebugString();
  v1::JobInfo second = RunJob(job, &second_events);
  ASSERT_EQ(second.state(), v1::JOB_SUCCEEDED) << second.DebugString();
  // The load warmed the model at the job's shape; the same shape again needs no warm-up, another
  // one does, and a shape warmed before stays warm.
  EXPECT_TRUE(Warmed(first_events));
  EXPECT_FALSE(Warmed(second_events));
  v1::SampleJob larger = job;
  larger.set_height(job.height() + 16);
  v1::JobInfo third = RunJob(larger, &larger_events);
  ASSERT_EQ(third.state(), v1::JOB_SUCCEEDED) << third.DebugString();
  EXPECT_TRUE(Warmed(larger_events));
  ExpectSameLatent(ReadLatent(ResultOf(third.job_id()).latent()), Reference(larger));
  // The first shape again: still warm.
  std::vector<v1::JobEvent> again_events;
  v1::JobInfo again = RunJob(job, &again_events);
  ASSERT_EQ(again.state(), v1::JOB_SUCCEEDED) << again.DebugString();
  EXPECT_FALSE(Warmed(again_events));
  EXPECT_EQ(first.group_name(), second.group_name());
  const v1::SampleResult a = ResultOf(first.job_id()), b = ResultOf(second.job_id());
  EXPECT_FALSE(a.model_was_resident());
  EXPECT_TRUE(b.model_was_resident());
  EXPECT_EQ(b.load_seconds(), 0);
  EXPECT_EQ(a.latent(), b.latent());  // same seed and settings: the same bytes
  // The workers' logs say so: one load, then "is resident".
  const std::string logs = cluster_->Logs();
  EXPECT_NE(logs.find("is resident"), std::string::npos);
  auto models = jobs_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  int copies = 0;
  for (const auto& worker : *models) copies += static_cast<int>(worker.models.size());
  EXPECT_EQ(copies, 2);  // one per rank
}

// Host shards and layer swap through the head (issue #6): the placement a job asks for is the
// one it gets, and the latent is the single process's. Six blocks, so that a swap budget of half
// of them leaves blocks to stream beside the two buffers.
TEST_F(JobsTest, HostShardAndLayerSwapJobsMatchOneProcess) {
  ASSERT_TRUE(MakeCheckpoint("deep.safetensors", 6, seed_ + 1).ok());
  v1::SampleJob job = Job();
  job.set_model("deep.safetensors");
  const Latent reference = Reference(job);

  v1::SampleJob sharded = job;
  sharded.mutable_mesh()->set_ulysses(2);
  sharded.set_placement("fsdp-host");
  v1::JobInfo done = RunJob(sharded);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_EQ(result.placement().rfind("fsdp-host (requested", 0), 0) << result.placement();
  ExpectSameLatent(ReadLatent(result.latent()), reference);

  v1::SampleJob swapped = job;
  swapped.set_placement("swap");
  swapped.set_swap_budget(0.5);
  done = RunJob(swapped);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  result = ResultOf(done.job_id());
  EXPECT_EQ(result.placement().rfind("swap (requested, 0.5 of the blocks", 0), 0)
      << result.placement();
  ExpectSameLatent(ReadLatent(result.latent()), reference);

  // A budget below the two buffers streaming needs fails the job with the numbers, and the
  // worker goes on serving.
  swapped.set_swap_budget(0.2);
  done = RunJob(swapped);
  EXPECT_EQ(done.state(), v1::JOB_FAILED) << done.DebugString();
  EXPECT_NE(done.error().find("below the 2 block buffers"), std::string::npos) << done.error();
  swapped.set_swap_budget(0.5);
  EXPECT_EQ(RunJob(swapped).state(), v1::JOB_SUCCEEDED);
}

// fp8 compute through the head (issue #27): on one rank the job equals one process computing in
// fp8; under Ulysses the attention sums in another order, and a 1e-7 change in an activation
// moves its e4m3 rounding by a whole step (2^-4) now and then, so the latent is compared by
// relative L2, against the documented bound (0.5e-7 when only the weights are fp8, checked
// while writing this; with the activations too, 0 to 0.02 by the draw). The fp8 model
// is another resident model than the default one, and stays near the default job's latent.
TEST_F(JobsTest, AnFp8ComputeJobEqualsOneProcessComputingInFp8) {
  v1::SampleJob job = Job();
  job.set_compute("fp8");
  const Latent want = Reference(job);
  for (int ulysses : {1, 2}) {
    v1::SampleJob meshed = job;
    meshed.mutable_mesh()->set_ulysses(ulysses);
    v1::JobInfo done = RunJob(meshed);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const Latent got = ReadLatent(ResultOf(done.job_id()).latent());
    if (ulysses == 1) {
      ExpectSameLatent(got, want);
    } else {
      const double error = testing_util::RelativeL2(got, want);
      std::printf("fp8 compute, ulysses 2 against one process: relative L2 %.3g\n", error);
      EXPECT_LT(error, 0.10);  // each run within the documented bound of the exact one
    }
  }
  // Layer swap and FSDP move fp8 compute's weights as it computes with them (e4m3 values and row
  // scales, quantised at load as the resident load quantises them): the resident placements'
  // latents, on six blocks (half of them streamed beside the swap's two buffers).
  {
    ASSERT_TRUE(MakeCheckpoint("deep.safetensors", 6, seed_ + 1).ok());
    v1::SampleJob deep = job;
    deep.set_model("deep.safetensors");
    for (const int ulysses : {1, 2}) {
      v1::SampleJob resident = deep;
      resident.mutable_mesh()->set_ulysses(ulysses);
      v1::JobInfo done = RunJob(resident);
      ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
      const Latent reference = ReadLatent(ResultOf(done.job_id()).latent());
      v1::SampleJob moved = resident;
      if (ulysses == 1) {
        moved.set_placement("swap");
        moved.set_swap_budget(0.5);
      } else {
        moved.set_placement("fsdp");
      }
      done = RunJob(moved);
      ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
      const v1::SampleResult result = ResultOf(done.job_id());
      EXPECT_EQ(result.placement().rfind(moved.placement(), 0), 0) << result.placement();
      ExpectSameLatent(ReadLatent(result.latent()), reference);
    }
  }
  bool listed = false;
  auto models = jobs_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  for (const auto& worker : *models) {
    for (const auto& model : worker.models) listed |= absl::EndsWith(model.dtype(), "+fp8");
  }
  EXPECT_TRUE(listed);
  // The default job on the same group: another model than the fp8 one, loaded beside it.
  v1::SampleJob plain = job;
  plain.clear_compute();
  plain.mutable_mesh()->set_ulysses(2);
  v1::JobInfo done = RunJob(plain);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_FALSE(result.model_was_resident());
  const Latent full = ReadLatent(result.latent());
  EXPECT_GT(MaxAbsDiff(full, want), 1e-4);  // it really was computed in fp8
  const double error = testing_util::RelativeL2(want, full);
  std::printf("fp8 compute against the default job: relative L2 %.3g\n", error);
  EXPECT_LT(error, 0.10);  // fp8_linear.h's bound, after the whole run
}

#ifndef RAYLIGHT_TEST_GPU  // what follows is the runtime's behaviour, the same on GPUs: CPU only

TEST_F(JobsTest, BadInputsAreRefusedNamingTheField) {
  struct Case {
    std::string what;
    std::function<void(v1::SampleJob&)> mutate;
    absl::StatusCode code;
    std::string field;
  };
  fs::create_directories(dir_->path() + "/outside");
  fs::copy_file(models_ + "/tiny.safetensors", dir_->path() + "/outside/secret.safetensors");
  fs::create_symlink(dir_->path() + "/outside/secret.safetensors", models_ + "/link.safetensors");
  // Issue #23, item 9: opening a FIFO blocked the head's I/O thread (every RPC timed out).
  ASSERT_EQ(mkfifo((models_ + "/fifo.safetensors").c_str(), 0600), 0);
  std::string junk_path = models_ + "/junk.safetensors";
  std::ofstream(junk_path) << "this is not a safetensors file";
  // Conditioning whose text is one wider than the model's.
  std::vector<float> wide(5 * 49, 0.5f);  // tiny-t2v's text is 48 wide
  models::StTensorInfo text{"text", models::StDtype::kF32, {5, 49}, 0, wide.size() * 4};
  std::string wrong_cond = models::BuildSafetensorsHeader({text}, {});
  wrong_cond.append(reinterpret_cast<const char*>(wide.data()), wide.size() * 4);
  // A LATENT of int8 values (what a careless conversion writes).
  std::vector<int8_t> bytes(16 * 3 * 6 * 10, 1);
  models::StTensorInfo int8{
      "latent_tensor", models::StDtype::kI8, {1, 16, 3, 6, 10}, 0, bytes.size()};
  std::string int_latent = models::BuildSafetensorsHeader({int8}, {});
  int_latent.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  // A float LATENT with a noise mask that cannot apply: 3 channels for a 16-channel model, or
  // integers.
  auto with_mask = [](models::StDtype dtype, std::vector<int64_t> shape) {
    const size_t latent_bytes = 16 * 3 * 6 * 10 * 4;
    size_t mask_bytes = dtype == models::StDtype::kI8 ? 1 : 4;
    for (int64_t side : shape) mask_bytes *= side;
    models::StTensorInfo latent{
        "latent_tensor", models::StDtype::kF32, {1, 16, 3, 6, 10}, 0, latent_bytes};
    models::StTensorInfo mask{"noise_mask", dtype, shape, latent_bytes, latent_bytes + mask_bytes};
    std::string file = models::BuildSafetensorsHeader({latent, mask}, {});
    file.append(latent_bytes + mask_bytes, '\0');
    return file;
  };
  const std::string three_channel_mask = with_mask(models::StDtype::kF32, {1, 3, 3, 6, 10});
  const std::string int_mask = with_mask(models::StDtype::kI8, {3, 6, 10});
  const std::string huge_mask = with_mask(models::StDtype::kF32, {1, 1, 3, 6, 1000});
  // Conditioning of the right shape carrying 100 KB of metadata, which the head would store.
  std::vector<float> fits(5 * 48, 0.5f);
  models::StTensorInfo fitting{"text", models::StDtype::kF32, {5, 48}, 0, fits.size() * 4};
  std::string heavy_cond =
      models::BuildSafetensorsHeader({fitting}, {{"junk", std::string(100000, 'm')}});
  heavy_cond.append(reinterpret_cast<const char*>(fits.data()), fits.size() * 4);
  const std::vector<Case> cases = {
      {"100 KB of unknown fields",
       [](auto& j) {
         j.GetReflection()->MutableUnknownFields(&j)->AddLengthDelimited(999,
                                                                         std::string(100000, 'x'));
       },
       absl::StatusCode::kInvalidArgument, "spec.payload: 100"},
      {"100 KB of conditioning metadata", [&](auto& j) { j.set_positive(heavy_cond); },
       absl::StatusCode::kInvalidArgument, "positive: safetensors metadata"},
      {"a noise mask of 3 channels", [&](auto& j) { j.set_latent(three_channel_mask); },
       absl::StatusCode::kInvalidArgument, "'noise_mask' has 3 channels"},
      {"an integer noise mask", [&](auto& j) { j.set_latent(int_mask); },
       absl::StatusCode::kInvalidArgument, "'noise_mask' is I8"},
      {"a noise mask wider than the pixels", [&](auto& j) { j.set_latent(huge_mask); },
       absl::StatusCode::kInvalidArgument, "larger than the latent's pixels"},
      {"unknown model", [](auto& j) { j.set_model("nope.safetensors"); },
       absl::StatusCode::kNotFound, "model:"},
      {"dot-dot", [](auto& j) { j.set_model("../outside/secret.safetensors"); },
       absl::StatusCode::kInvalidArgument, "model:"},
      {"symlink out", [](auto& j) { j.set_model("link.safetensors"); },
       absl::StatusCode::kInvalidArgument, "outside the model root"},
      {"absolute outside",
       [this](auto& j) { j.set_model(dir_->path() + "/outside/secret.safetensors"); },
       absl::StatusCode::kInvalidArgument, "outside the model roots"},
      {"malformed checkpoint", [](auto& j) { j.set_model("junk.safetensors"); },
       absl::StatusCode::kInvalidArgument, "model:"},
      {"malformed conditioning", [](auto& j) { j.set_positive("garbage bytes"); },
       absl::StatusCode::kInvalidArgument, "positive:"},
      {"wrong conditioning shape", [&](auto& j) { j.set_negative(wrong_cond); },
       absl::StatusCode::kInvalidArgument, "negative:"},
      {"no negative at cfg 3", [](auto& j) { j.clear_negative(); },
       absl::StatusCode::kInvalidArgument, "negative:"},
      {"absurd frames", [](auto& j) { j.set_frames(100001); }, absl::StatusCode::kInvalidArgument,
       "frames:"},
      {"frames not 4k+1", [](auto& j) { j.set_frames(8); }, absl::StatusCode::kInvalidArgument,
       "frames:"},
      {"absurd width", [](auto& j) { j.set_width(1 << 20); }, absl::StatusCode::kInvalidArgument,
       "width:"},
      {"zero steps", [](auto& j) { j.set_steps(0); }, absl::StatusCode::kInvalidArgument, "steps:"},
      {"absurd steps", [](auto& j) { j.set_steps(1000000); }, absl::StatusCode::kInvalidArgument,
       "steps:"},
      {"unknown sampler", [](auto& j) { j.set_sampler("nope"); },
       absl::StatusCode::kInvalidArgument, "sampler:"},
      {"ulysses not dividing 4 heads", [](auto& j) { j.mutable_mesh()->set_ulysses(3); },
       absl::StatusCode::kInvalidArgument, "ulysses"},
      {"mesh larger than the cluster", [](auto& j) { j.mutable_mesh()->set_ring(4); },
       absl::StatusCode::kFailedPrecondition, "mesh:"},
      {"nan cfg", [](auto& j) { j.set_cfg(NAN); }, absl::StatusCode::kInvalidArgument, "cfg:"},
      {"unknown placement", [](auto& j) { j.set_placement("everywhere"); },
       absl::StatusCode::kInvalidArgument, "placement:"},
      {"fsdp-host on one rank", [](auto& j) { j.set_placement("fsdp-host"); },
       absl::StatusCode::kInvalidArgument, "placement:"},
      {"swap budget over 1", [](auto& j) { j.set_swap_budget(1.5); },
       absl::StatusCode::kInvalidArgument, "swap_budget:"},
      {"nan swap budget", [](auto& j) { j.set_swap_budget(NAN); },
       absl::StatusCode::kInvalidArgument, "swap_budget:"},
      {"unknown compute", [](auto& j) { j.set_compute("int4"); },
       absl::StatusCode::kInvalidArgument, "compute: unknown 'int4'"},
      {"unknown attention", [](auto& j) { j.set_attention("int8"); },
       absl::StatusCode::kInvalidArgument, "attention: unknown 'int8'"},
      {"fp8 attention on CPU workers", [](auto& j) { j.set_attention("fp8"); },
       absl::StatusCode::kInvalidArgument, "attention: fp8 runs on GPU workers"},
      {"fp8 attention with ring",
       [](auto& j) {
         j.set_attention("fp8");
         j.mutable_mesh()->set_ring(2);
       },
       absl::StatusCode::kInvalidArgument, "attention: fp8 runs on one process or Ulysses"},
      {"model name with a NUL",
       [](auto& j) { j.set_model(std::string("tiny.safetensors\0junk", 21)); },
       absl::StatusCode::kInvalidArgument, "NUL"},
      {"the model root itself", [](auto& j) { j.set_model("."); },
       absl::StatusCode::kInvalidArgument, "model root"},
      {"an integer latent", [&](auto& j) { j.set_latent(int_latent); },
       absl::StatusCode::kInvalidArgument, "latent:"},
      // The echoed name is cut to fit the status trailers (it came back RESOURCE_EXHAUSTED).
      {"a 100 KB model name",
       [](auto& j) { j.set_model(std::string(100000, 'a') + ".safetensors"); },
       absl::StatusCode::kNotFound, "more bytes)"},
      {"a FIFO named like a checkpoint", [](auto& j) { j.set_model("fifo.safetensors"); },
       absl::StatusCode::kInvalidArgument, "not a regular file"},
      {"negative start step", [](auto& j) { j.set_start_step(-1); },
       absl::StatusCode::kInvalidArgument, "start_step:"},
      {"absurd end step", [](auto& j) { j.set_end_step(20000); },
       absl::StatusCode::kInvalidArgument, "end_step:"},
      {"one sigma", [](auto& j) { j.add_sigmas(1.0); }, absl::StatusCode::kInvalidArgument,
       "sigmas:"},
      {"ascending sigmas",
       [](auto& j) {
         for (double sigma : {0.5, 0.9, 0.0}) j.add_sigmas(sigma);
       },
       absl::StatusCode::kInvalidArgument, "sigmas[1]:"},
      {"boundary outside (0, 1)",
       [](auto& j) {
         j.set_low_noise_model("tiny.safetensors");
         j.set_boundary(1.5);
       },
       absl::StatusCode::kInvalidArgument, "boundary:"},
      {"boundary without an expert", [](auto& j) { j.set_boundary(0.9); },
       absl::StatusCode::kInvalidArgument, "boundary:"},
      {"unknown low-noise expert", [](auto& j) { j.set_low_noise_model("nope.safetensors"); },
       absl::StatusCode::kNotFound, "low_noise_model:"},
      {"nan sigma",
       [](auto& j) {
         j.add_sigmas(NAN);
         j.add_sigmas(0);
       },
       absl::StatusCode::kInvalidArgument, "sigmas[0]:"},
  };
  for (const Case& c : cases) {
    v1::SampleJob job = Job();
    c.mutate(job);
    auto submitted = jobs_->SubmitSample(job);
    ASSERT_FALSE(submitted.ok()) << c.what;
    EXPECT_EQ(submitted.status().code(), c.code) << c.what << ": " << submitted.status();
    EXPECT_NE(submitted.status().message().find(c.field), std::string::npos)
        << c.what << ": " << submitted.status();
  }
  // A wrong token is refused before anything is read.
  client::ClientOptions bad;
  bad.address = cluster_->address();
  bad.token = "wrong";
  auto intruder = client::JobClient::Connect(bad);
  ASSERT_TRUE(intruder.ok());
  auto refused = (*intruder)->SubmitSample(Job());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  // Nothing was queued, and the cluster still serves.
  auto listed = jobs_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  v1::JobInfo good = RunJob(Job());
  EXPECT_EQ(good.state(), v1::JOB_SUCCEEDED) << good.DebugString();
}

// LoRA (issue #25): a job with a LoRA equals the same job on the checkpoint with the LoRA merged
// offline (tests/jobs/lora_reference.py), on every placement (resident, FSDP with host shards
// under Ulysses 2, layer swap); the LoRA'd model is cached apart from the plain one.
TEST_F(JobsTest, LoraJobsEqualTheOfflineMergeOnEveryPlacement) {
  ASSERT_TRUE(MakeCheckpoint("deep.safetensors", 6, seed_ + 2).ok());
  const double strength = 0.5 + static_cast<double>(seed_ % 1000) / 1000;
  absl::Status made = RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_LORA_REFERENCE, "--base=" + models_ + "/deep.safetensors",
       "--lora=" + models_ + "/style.safetensors", "--merged=" + models_ + "/merged.safetensors",
       absl::StrCat("--strength=", strength), absl::StrCat("--seed=", seed_)},
      dir_->path() + "/lora.log", std::chrono::seconds(120));
  ASSERT_TRUE(made.ok()) << made << testing_util::ReadFileOrEmpty(dir_->path() + "/lora.log");
  v1::SampleJob merged = Job();
  merged.set_model("merged.safetensors");
  const Latent reference = Reference(merged);
  v1::SampleJob job = Job();
  job.set_model("deep.safetensors");
  v1::LoraRef* lora = job.add_loras();
  lora->set_name("style.safetensors");
  lora->set_strength(strength);
  v1::SampleJob sharded = job, swapped = job;
  sharded.mutable_mesh()->set_ulysses(2);
  sharded.set_placement("fsdp-host");
  swapped.set_placement("swap");
  swapped.set_swap_budget(0.5);
  // Resident twice (the second finds the LoRA'd model loaded), then FSDP and swap.
  for (int run = 0; run < 4; ++run) {
    v1::JobInfo done = RunJob(run < 2 ? job : run == 2 ? sharded : swapped);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const v1::SampleResult result = ResultOf(done.job_id());
    ExpectSameLatent(ReadLatent(result.latent()), reference);
    if (run == 1) {
      EXPECT_TRUE(result.model_was_resident());
    }
  }
  v1::SampleJob plain = Job();
  plain.set_model("deep.safetensors");
  v1::JobInfo base = RunJob(plain);
  ASSERT_EQ(base.state(), v1::JOB_SUCCEEDED);
  EXPECT_GT(MaxAbsDiff(ReadLatent(ResultOf(base.job_id()).latent()), reference), 1e-3);
  // A LoRA outside the roots, or of strength NaN, is refused naming the entry.
  lora->set_name("../outside.safetensors");
  auto refused = jobs_->SubmitSample(job);
  EXPECT_NE(refused.status().message().find("loras[0].name"), std::string::npos)
      << refused.status();
  lora->set_name("style.safetensors");
  lora->set_strength(NAN);
  refused = jobs_->SubmitSample(job);
  EXPECT_NE(refused.status().message().find("loras[0].strength"), std::string::npos)
      << refused.status();
}

// GGUF (issue #25): a job on a city96-layout GGUF file (tests/models/gguf_reference.py, every
// 32-value type among its matrices) equals the same job on the values gguf-py dequantises from
// it, on every placement: the blocks stay quantised on the workers and move as stored; with a
// LoRA too.
TEST_F(JobsTest, GgufJobsEqualTheDequantisedCheckpointOnEveryPlacement) {
  if (kGpu) GTEST_SKIP() << "gguf-py writes the file; not installed on the GPU machine";
  ASSERT_TRUE(MakeCheckpoint("dense.safetensors", 4, seed_ + 3).ok());
  absl::Status made = RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_GGUF_REFERENCE, "convert", models_ + "/dense.safetensors",
       models_ + "/quantised.gguf", models_ + "/dequantised.safetensors", absl::StrCat(seed_)},
      dir_->path() + "/gguf.log", std::chrono::seconds(120));
  ASSERT_TRUE(made.ok()) << made << testing_util::ReadFileOrEmpty(dir_->path() + "/gguf.log");
  v1::SampleJob dequantised = Job();
  dequantised.set_model("dequantised.safetensors");
  const Latent reference = Reference(dequantised);
  v1::SampleJob job = Job();
  job.set_model("quantised.gguf");
  v1::SampleJob sharded = job, swapped = job;
  sharded.mutable_mesh()->set_ulysses(2);
  sharded.set_placement("fsdp-host");
  swapped.set_placement("swap");
  swapped.set_swap_budget(0.75);  // the blocks differ in size (their types rotate): 2 buffers fit
  for (const v1::SampleJob& run : {job, sharded, swapped}) {
    v1::JobInfo done = RunJob(run);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), reference);
  }
  // A LoRA on the quantised base (applied at each dequantisation) equals the LoRA merged offline
  // into the dequantised values, resident and with FSDP.
  absl::Status lora_made =
      RunToCompletion({RAYLIGHT_TEST_PYTHON, RAYLIGHT_LORA_REFERENCE,
                       "--base=" + models_ + "/dequantised.safetensors",
                       "--lora=" + models_ + "/gguf-style.safetensors",
                       "--merged=" + models_ + "/dequantised-merged.safetensors", "--strength=0.8",
                       absl::StrCat("--seed=", seed_)},
                      dir_->path() + "/lora.log", std::chrono::seconds(120));
  ASSERT_TRUE(lora_made.ok()) << lora_made
                              << testing_util::ReadFileOrEmpty(dir_->path() + "/lora.log");
  v1::SampleJob merged = Job();
  merged.set_model("dequantised-merged.safetensors");
  const Latent lora_reference = Reference(merged);
  for (v1::SampleJob run : {job, sharded}) {
    v1::LoraRef* lora = run.add_loras();
    lora->set_name("gguf-style.safetensors");
    lora->set_strength(0.8);
    v1::JobInfo done = RunJob(run);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), lora_reference);
  }
}

// Issue #23, item 10: job rows and results were kept forever. An ended job is forgotten once
// its retention has passed (row, result file, request id); jobs not ended have no end time and
// are never swept.
// A prompt (issue #24): encoded on the workers by the one umT5 file in the root's ComfyUI folder
// text_encoders/, the job equals the same job on the conditioning raylight-encode-text writes
// (the prompt, and Wan's default negative prompt), the second time from the workers' cache of
// encodings; an encoder that is not one, or a prompt beside `positive`, is refused naming the
// field.
TEST_F(JobsTest, APromptIsEncodedOnTheWorkersAsRaylightEncodeTextEncodesIt) {
  if (kGpu) GTEST_SKIP() << "the encoder's width is the tiny preset's";
  const std::string encoders = models_ + "/text_encoders";
  fs::create_directories(encoders);
  // A FIFO beside it: the search must pass it by without opening it (issue #23, item 9).
  ASSERT_EQ(mkfifo((encoders + "/fifo.safetensors").c_str(), 0600), 0);
  const std::string encoder = MakeTinyUmt5();
  ASSERT_FALSE(encoder.empty());
  const std::string prompt = "a red fox runs in the (snow:1.2), cinematic";
  for (auto [name, text] : {std::pair<std::string, std::string>{"prompt", prompt},
                            {"default-negative", models::wan::kWanDefaultNegativePrompt}}) {
    const absl::Status encoded =
        RunToCompletion({kBin + "/raylight-encode-text", "--text-encoder=" + encoder,
                         "--prompt=" + text, "--out=" + dir_->path() + "/" + name + ".safetensors"},
                        dir_->path() + "/encode.log", std::chrono::seconds(120));
    ASSERT_TRUE(encoded.ok()) << encoded
                              << testing_util::ReadFileOrEmpty(dir_->path() + "/encode.log");
  }
  v1::SampleJob offline = Job();
  offline.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/prompt.safetensors"));
  offline.set_negative(
      testing_util::ReadFileOrEmpty(dir_->path() + "/default-negative.safetensors"));
  v1::JobInfo done = RunJob(offline);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent reference = ReadLatent(ResultOf(done.job_id()).latent());

  v1::SampleJob job = Job();
  job.clear_positive();
  job.clear_negative();
  job.set_prompt(prompt);
  // One rank, the second time from its cache; then a 2-rank group (Ulysses 2), whose rank 0
  // encodes (its actor is the group's own, with a cache of its own) and sends the encodings to
  // the other rank: one message per prompt, and the same latent.
  for (int run = 0; run < 3; ++run) {
    std::vector<v1::JobEvent> events;
    v1::SampleJob this_run = job;
    if (run == 2) this_run.mutable_mesh()->set_ulysses(2);
    done = RunJob(this_run, &events);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), reference);
    int cached = 0, encoded = 0;
    for (const v1::JobEvent& event : events) {
      v1::SampleProgress progress;
      if (!event.has_progress() || !progress.ParseFromString(event.progress())) continue;
      if (progress.message().find("encoding was cached") != std::string::npos) ++cached;
      if (progress.message().find("encoded the") != std::string::npos) ++encoded;
    }
    EXPECT_EQ(cached + encoded, 2) << "run " << run;  // the positive and the negative
    if (run < 2) {
      EXPECT_EQ(cached, run == 0 ? 0 : 2) << "run " << run;
    }
  }
  // A different negative prompt is a different job.
  job.set_negative_prompt("blurry");
  done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED);
  EXPECT_GT(MaxAbsDiff(ReadLatent(ResultOf(done.job_id()).latent()), reference), 1e-4);

  job.set_text_encoder("tiny.safetensors");  // a DiT, not an encoder
  auto refused = jobs_->SubmitSample(job);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("text_encoder"), std::string::npos) << refused.status();
  job.clear_text_encoder();
  job.set_positive(offline.positive());
  refused = jobs_->SubmitSample(job);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("prompt"), std::string::npos) << refused.status();
}

// An I2V job from a prompt and a start image (issue #24): the workers encode the prompts with
// the root's umT5, the image with its VAE and CLIP vision tower (ComfyUI's folders
// text_encoders/, vae/, clip_vision/), and the job equals the same job on the conditioning files
// raylight-encode-text --image writes; on two ranks too. Images without a prompt or on a T2V
// model, bytes that are no PNG, and a prompt on an I2V model without an image are refused by
// field.
TEST_F(JobsTest, AnI2vJobEncodesItsStartImageAsRaylightEncodeTextDoes) {
  if (kGpu) GTEST_SKIP() << "the encoders' widths are the tiny presets'";
  const std::string encoder = MakeTinyUmt5();
  ASSERT_FALSE(encoder.empty());
  fs::create_directories(models_ + "/vae");
  fs::create_directories(models_ + "/clip_vision");
  const std::string vae = models_ + "/vae/wan_2.1_vae.safetensors";
  const std::string clip = models_ + "/clip_vision/clip_tiny.safetensors";
  std::ofstream(dir_->path() + "/clip.json")
      << R"({"width": 40, "heads": 1, "layers": 2, "mlp": 64, "activation": "quick_gelu"})";
  const absl::Status made = RunTools(
      {{kBin + "/raylight-make-checkpoint", "--preset=tiny-i2v", "--layers=2", "--dtype=bf16",
        absl::StrCat("--seed=", seed_), "--out=" + models_ + "/i2v.safetensors"},
       {kBin + "/raylight-vae", "make-random", "--preset=wan2.1", "--width=8",
        absl::StrCat("--seed=", seed_), "--out=" + vae},
       {RAYLIGHT_TEST_PYTHON, RAYLIGHT_CLIP_VISION_REFERENCE, "random",
        "--config=" + dir_->path() + "/clip.json", "--image-size=28",
        absl::StrCat("--seed=", seed_), "--out=" + clip}},
      "make.log", std::chrono::seconds(300));
  ASSERT_TRUE(made.ok()) << made;
  // A start image of another aspect than the video's (cropped to it, then scaled).
  const std::string png = WriteRandomPng(53, 37);
  ASSERT_FALSE(png.empty());
  const std::string prompt = "the fox turns its head";
  const std::vector<std::string> i2v_args = {"--image=" + dir_->path() + "/start.png",
                                             "--vae=" + vae,
                                             "--clip-vision=" + clip,
                                             "--width=80",
                                             "--height=48",
                                             "--frames=9"};
  const absl::Status encoded = EncodePrompts(encoder, prompt, "i2v", i2v_args);
  ASSERT_TRUE(encoded.ok()) << encoded;
  v1::SampleJob offline = Job();
  offline.set_model("i2v.safetensors");
  offline.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/i2v-positive.safetensors"));
  offline.set_negative(testing_util::ReadFileOrEmpty(dir_->path() + "/i2v-negative.safetensors"));
  v1::JobInfo done = RunJob(offline);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent reference = ReadLatent(ResultOf(done.job_id()).latent());

  v1::SampleJob job = offline;
  job.clear_positive();
  job.clear_negative();
  job.set_prompt(prompt);
  job.set_image(png);
  for (int ranks : {1, 2}) {
    v1::SampleJob this_run = job;
    this_run.mutable_mesh()->set_ulysses(ranks);
    std::vector<v1::JobEvent> events;
    done = RunJob(this_run, &events);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << ranks << " ranks: " << done.DebugString();
    ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), reference);
    int image_messages = 0;
    for (const v1::JobEvent& event : events) {
      v1::SampleProgress progress;
      if (event.has_progress() && progress.ParseFromString(event.progress()) &&
          progress.message().find("encoded the start image") != std::string::npos) {
        ++image_messages;
      }
    }
    EXPECT_EQ(image_messages, 1) << ranks << " ranks";
  }

  // FLF2V: an end image too, a JPEG (what a camera gives), against the tool's conditioning.
  const std::string end_jpeg = dir_->path() + "/end.jpg";
  const absl::Status converted = RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, "-c",
       "import sys; from PIL import Image; "
       "Image.open(sys.argv[1]).rotate(90, expand=True).save(sys.argv[2], quality=90)",
       dir_->path() + "/start.png", end_jpeg},
      dir_->path() + "/jpeg.log", std::chrono::seconds(60));
  ASSERT_TRUE(converted.ok()) << converted
                              << testing_util::ReadFileOrEmpty(dir_->path() + "/jpeg.log");
  std::vector<std::string> flf_args = i2v_args;
  flf_args.push_back("--end-image=" + end_jpeg);
  const absl::Status flf_encoded = EncodePrompts(encoder, prompt, "flf", flf_args);
  ASSERT_TRUE(flf_encoded.ok()) << flf_encoded;
  v1::SampleJob flf_offline = offline;
  flf_offline.set_positive(
      testing_util::ReadFileOrEmpty(dir_->path() + "/flf-positive.safetensors"));
  flf_offline.set_negative(
      testing_util::ReadFileOrEmpty(dir_->path() + "/flf-negative.safetensors"));
  done = RunJob(flf_offline);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent flf_reference = ReadLatent(ResultOf(done.job_id()).latent());
  v1::SampleJob flf = job;
  flf.set_end_image(testing_util::ReadFileOrEmpty(end_jpeg));
  done = RunJob(flf);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), flf_reference);
  ExpectRefusedNaming(flf, "end_image", [](v1::SampleJob& j) { j.set_end_image("\xff\xd8 no"); });
  ExpectRefusedNaming(flf, "end_image", [](v1::SampleJob& j) {
    j.clear_image();
    j.set_model("tiny.safetensors");
  });

  for (
      auto [field, edit] : std::vector<
          std::pair<
              std::string,
              std::function<void(
                  v1::SampleJob&)>>>{{"image",
                                      [](v1::SampleJob& j) {
                                        j.set_model("tiny.safetensors");
                                      }},  // T2V
                                     {
                                         "image",
                                         [](v1::SampleJob& j) { j.set_image("GIF89a not a png"); }},
                                     {"image",
                                      [](v1::SampleJob& j) { j.clear_image(); }},  // a prompt
                                                                                   // without it
                                     {
                                         "image",
                                         [&](v1::SampleJob& j) {
                                           j.clear_prompt();
                                           j.set_positive(offline.positive());
                                           j.set_negative(offline.negative());
                                         }},
                                     {"clip_vision",
                                      [](v1::SampleJob&
                                             j) { j.set_clip_vision("vae/wan_2.1_vae.safetensors"); }},
                                     {"clip_vision", [&](v1::SampleJob& j) {
                                        j.clear_image();
                                        j.clear_prompt();
                                        j.set_positive(offline.positive());
                                        j.set_negative(offline.negative());
                                        j.set_clip_vision("clip_vision/clip_tiny.safetensors");
                                      }}}) {
    ExpectRefusedNaming(job, field, edit);
  }
}

TEST_F(JobsTest, ATi2vJobStartsFromItsImageAsRaylightEncodeTextMakesIt) {
  if (kGpu) GTEST_SKIP() << "the encoders' widths are the tiny presets'";
  const std::string encoder = MakeTinyUmt5();
  ASSERT_FALSE(encoder.empty());
  fs::create_directories(models_ + "/vae");
  const std::string vae = models_ + "/vae/wan2.2_vae.safetensors";
  const absl::Status made = RunTools(
      {{kBin + "/raylight-make-checkpoint", "--preset=tiny-ti2v", "--layers=2", "--dtype=bf16",
        absl::StrCat("--seed=", seed_), "--out=" + models_ + "/ti2v.safetensors"},
       {kBin + "/raylight-vae", "make-random", "--preset=wan2.2", "--width=8",
        absl::StrCat("--seed=", seed_), "--out=" + vae}},
      "make.log", std::chrono::seconds(300));
  ASSERT_TRUE(made.ok()) << made;
  const std::string png = WriteRandomPng(45, 29);
  ASSERT_FALSE(png.empty());
  const std::string prompt = "the fox jumps";
  const absl::Status encoded = EncodePrompts(
      encoder, prompt, "ti2v",
      {"--image=" + dir_->path() + "/start.png", "--vae=" + vae, "--width=64", "--height=32",
       "--frames=9", "--latent-out=" + dir_->path() + "/start.latent"});
  ASSERT_TRUE(encoded.ok()) << encoded;
  v1::SampleJob offline = Job();
  offline.set_model("ti2v.safetensors");
  offline.set_width(64);
  offline.set_height(32);
  offline.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/ti2v-positive.safetensors"));
  offline.set_negative(testing_util::ReadFileOrEmpty(dir_->path() + "/ti2v-negative.safetensors"));
  offline.set_latent(testing_util::ReadFileOrEmpty(dir_->path() + "/start.latent"));
  v1::JobInfo done = RunJob(offline);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent reference = ReadLatent(ResultOf(done.job_id()).latent());

  v1::SampleJob job = offline;
  job.clear_positive();
  job.clear_negative();
  job.clear_latent();
  job.set_prompt(prompt);
  job.set_image(png);
  done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), reference);
  ExpectRefusedNaming(job, "latent", [&](v1::SampleJob& j) { j.set_latent(offline.latent()); });
  ExpectRefusedNaming(job, "end_image", [&](v1::SampleJob& j) { j.set_end_image(png); });
  ExpectRefusedNaming(job, "clip_vision",
                      [](v1::SampleJob& j) { j.set_clip_vision("vae/wan2.2_vae.safetensors"); });
  // MagCache's schedule reads no timestep modulation, so TI2V's per-token timesteps take it (the
  // job's own ratios: the tiny model has none published), the same on a Ulysses-2 group.
  v1::SampleJob cached = offline;
  cached.set_steps(12);
  cached.set_sampler("euler");
  cached.mutable_cache()->set_kind("magcache");
  for (int i = 0; i < 24; ++i) cached.mutable_cache()->add_mag_ratios(0.99);
  done = RunJob(cached);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  EXPECT_GT(ResultOf(done.job_id()).calls_reused(), 0);
  const Latent one_rank = ReadLatent(ResultOf(done.job_id()).latent());
  cached.mutable_mesh()->set_ulysses(2);
  done = RunJob(cached);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), one_rank);
}

TEST_F(JobsTest, AJobDecodesItsVideoOnItsGroupAsRaylightVaeDecodesItsLatent) {
  // A narrow random Wan 2.1 VAE in the root's ComfyUI folder vae/, found by the latent's
  // channels; a Wan 2.2 one beside it (48 channels) is passed by.
  fs::create_directories(models_ + "/vae");
  for (auto [preset, name] : {std::pair{"wan2.1", "wan_2.1_vae.safetensors"},
                              std::pair{"wan2.2", "wan2.2_vae.safetensors"}}) {
    const absl::Status made = RunToCompletion(
        {kBin + "/raylight-vae", "make-random", std::string("--preset=") + preset, "--width=8",
         absl::StrCat("--seed=", seed_), "--out=" + models_ + "/vae/" + name},
        dir_->path() + "/vae.log", std::chrono::seconds(120));
    ASSERT_TRUE(made.ok()) << made << testing_util::ReadFileOrEmpty(dir_->path() + "/vae.log");
  }
  // Frames decoded over a 2-rank group (a band of rows each) against the tool's one-process
  // decode of the job's own latent.
  v1::SampleJob job = Job();
  job.mutable_mesh()->set_ulysses(2);
  job.set_output("frames");
  std::vector<v1::JobEvent> events;
  v1::JobInfo done = RunJob(job, &events);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_EQ(result.video_format(), "frames");
  EXPECT_GT(result.decode_seconds(), 0);
  // The VAE stays loaded and the models list shows it beside the diffusion model.
  auto models = jobs_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  int vaes = 0;
  for (const auto& worker : *models) {
    for (const auto& model : worker.models) {
      if (model.variant() == "Wan VAE 2.1") {
        ++vaes;
        EXPECT_NE(model.path().find("wan_2.1_vae.safetensors"), std::string::npos);
        EXPECT_NE(model.placement().find("side model"), std::string::npos);
      }
    }
  }
  EXPECT_EQ(vaes, 2);  // both ranks decoded a band
  int decode_messages = 0;
  for (const v1::JobEvent& event : events) {
    v1::SampleProgress progress;
    if (event.has_progress() && progress.ParseFromString(event.progress()) &&
        progress.message().find("decoded 9 frames") != std::string::npos) {
      ++decode_messages;
    }
  }
  EXPECT_EQ(decode_messages, 1);
  const std::string latent_path = dir_->path() + "/job.latent";
  const std::string frames_path = dir_->path() + "/job-frames.safetensors";
  const std::string tool_path = dir_->path() + "/tool-frames.safetensors";
  std::ofstream(latent_path, std::ios::binary) << result.latent();
  std::ofstream(frames_path, std::ios::binary) << result.video();
  std::vector<std::string> decode = {kBin + "/raylight-vae", "decode",
                                     "--vae=" + models_ + "/vae/wan_2.1_vae.safetensors",
                                     "--latent=" + latent_path, "--out=" + tool_path};
  if (kGpu) decode.insert(decode.end(), {"--device=cuda", "--dtype=bf16"});
  const absl::Status decoded =
      RunToCompletion(decode, dir_->path() + "/decode.log", std::chrono::seconds(120));
  ASSERT_TRUE(decoded.ok()) << decoded
                            << testing_util::ReadFileOrEmpty(dir_->path() + "/decode.log");
  const auto [job_frames, job_shape] = FrameBytes(frames_path);
  const auto [tool_frames, tool_shape] = FrameBytes(tool_path);
  EXPECT_EQ(job_shape, (std::vector<int64_t>{9, 48, 80, 3}));
  ASSERT_EQ(job_shape, tool_shape);
  // Bands and the whole image differ in float rounding only, which truncation to bytes turns
  // into a difference of one level at a few pixels (bf16 on GPUs: a little more).
  int64_t differing = 0, worst = 0, total = 0;
  for (size_t i = 0; i < job_frames.size(); ++i) {
    const int diff = std::abs(int(uint8_t(job_frames[i])) - int(uint8_t(tool_frames[i])));
    differing += diff > 0;
    worst = std::max<int64_t>(worst, diff);
    total += diff;
  }
  if (kGpu) {
    EXPECT_LT(double(total) / job_frames.size(), 2.0);
  } else {
    EXPECT_LE(worst, 1);
    EXPECT_LT(double(differing) / job_frames.size(), 0.01);
  }

  // An MP4 (where the workers have FFmpeg; GPU builds may not) and a one-frame PNG.
  job.set_output("video");
  job.set_fps(24);
  done = RunJob(job);
  if (kGpu && done.error().find("without FFmpeg") != std::string::npos) {
    EXPECT_NE(done.error().find("output"), std::string::npos);
  } else {
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    result = ResultOf(done.job_id());
    EXPECT_EQ(result.video_format(), "mp4");
    ASSERT_GT(result.video().size(), 12u);
    EXPECT_EQ(result.video().substr(4, 4), "ftyp");
  }
  job.set_frames(1);
  done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  result = ResultOf(done.job_id());
  EXPECT_EQ(result.video_format(), "png");
  EXPECT_EQ(result.video().substr(1, 3), "PNG");

  // Bad outputs are refused at submission, naming the field.
  for (auto [field, edit] :
       std::vector<std::pair<std::string, std::function<void(v1::SampleJob&)>>>{
           {"output", [](v1::SampleJob& j) { j.set_output("gif"); }},
           {"crf", [](v1::SampleJob& j) { j.set_crf(60); }},
           {"fps", [](v1::SampleJob& j) { j.set_fps(-1); }},
           {"vae", [](v1::SampleJob& j) { j.set_vae("tiny.safetensors"); }},  // a DiT
           {"vae", [](v1::SampleJob& j) { j.set_vae("vae/wan2.2_vae.safetensors"); }},
           {"vae", [](v1::SampleJob& j) {
              j.set_output("latent");
              j.set_vae("vae/wan_2.1_vae.safetensors");
            }}}) {
    ExpectRefusedNaming(job, field, edit);
  }
}

class JobHistoryTest : public JobsTest {
 protected:
  void SetUp() override {
    extra_head_args_ = {"--job-retention-ms=3000"};
    Start(2);
  }

  // How many rows the head's SQLite database holds for `job_id` (jobs and plans), read-only
  // (the head must be stopped: it locks the database exclusively).
  int JobRowsInStateDb(const std::string& job_id) {
    sqlite3* db = nullptr;
    const std::string path = cluster_->state_dir() + "/head.sqlite";
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    int rows = 0;
    for (const char* sql : {"SELECT count(*) FROM jobs WHERE id = ?",
                            "SELECT count(*) FROM job_plans WHERE id = ?"}) {
      sqlite3_stmt* statement = nullptr;
      EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &statement, nullptr), SQLITE_OK);
      sqlite3_bind_text(statement, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(statement) == SQLITE_ROW) rows += sqlite3_column_int(statement, 0);
      sqlite3_finalize(statement);
    }
    sqlite3_close(db);
    return rows;
  }
};

TEST_F(JobHistoryTest, AnEndedJobIsForgottenAfterItsRetention) {
  v1::JobInfo done = RunJob(Job());
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const std::string result = cluster_->state_dir() + "/jobs/" + done.job_id() + ".result";
  EXPECT_TRUE(fs::exists(result));
  EXPECT_TRUE(jobs_->SampleResult(done.job_id()).ok());  // kept for now
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (jobs_->Get(done.job_id()).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(jobs_->Get(done.job_id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(jobs_->SampleResult(done.job_id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(result));
  auto listed = jobs_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  // The head goes on running jobs, and keeps the new one's result.
  v1::JobInfo ran = RunJob(Job(12));
  EXPECT_EQ(ran.state(), v1::JOB_SUCCEEDED) << ran.DebugString();
  EXPECT_TRUE(jobs_->SampleResult(ran.job_id()).ok());
  // Forgotten in the state database too (a restarted head would bring it back otherwise); the
  // head holds its database exclusively, so it is read after the head is gone.
  cluster_->KillHead();
  EXPECT_EQ(JobRowsInStateDb(done.job_id()), 0);
  EXPECT_EQ(JobRowsInStateDb(ran.job_id()), 1);
}

// ComfyUI's KSamplerAdvanced pattern as two jobs: the first stops at step 2 with its leftover
// noise, the second continues from its LATENT without adding noise. With euler (one model call
// per step, no step noise) that is the same run as one job of all the steps: the LATENT's
// round trip through the VAE's space between them costs float rounding only.
// Issue #27: TeaCache through the head on a Ulysses-2 group. Both ranks take the same decisions
// (one that differed would leave a collective half-entered), the latent equals one process
// caching the same way, and the result counts the reused calls (past the five retained calls, a
// high threshold reuses most). The tiny model has no published coefficients, so the job gives its
// own (the identity).
v1::SampleJob TeaCacheJob(v1::SampleJob job, int ranks) {
  job.mutable_mesh()->set_ulysses(ranks);
  job.set_steps(12);
  job.mutable_cache()->set_kind("teacache");
  job.mutable_cache()->set_threshold(9.5);
  job.mutable_cache()->add_coefficients(1);  // the identity: the relative change as it is
  job.mutable_cache()->add_coefficients(0);
  return job;
}

TEST_F(JobsTest, ATeaCacheJobOnTwoRanksEqualsOneProcessCachingTheSameWay) {
  v1::SampleJob job = TeaCacheJob(Job(71), 2);
  v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_EQ(result.model_calls(), 12);  // cond and uncond batched: one call a step
  EXPECT_GT(result.calls_reused(), 0);
  EXPECT_LE(result.calls_reused(), 7);
  std::cout << "TeaCache reused " << result.calls_reused() << " of " << result.model_calls()
            << " model calls" << std::endl;
  const Latent cached = ReadLatent(result.latent());
  ExpectSameLatent(cached, Reference(job));
  v1::SampleJob uncached = job;
  uncached.clear_cache();
  EXPECT_GT(MaxAbsDiff(cached, Reference(uncached)), 1e-4);  // the reuse is real
  // Refused before anything is queued, naming the field.
  for (auto [field, change] :
       std::vector<std::pair<std::string, std::function<void(v1::StepCache&)>>>{
           {"cache.kind", [](v1::StepCache& c) { c.set_kind("magic"); }},
           {"cache.coefficients", [](v1::StepCache& c) { c.clear_coefficients(); }},
           {"cache.threshold", [](v1::StepCache& c) { c.set_threshold(-1); }},
       }) {
    v1::SampleJob bad = job;
    change(*bad.mutable_cache());
    auto refused = jobs_->SubmitSample(bad);
    ASSERT_FALSE(refused.ok()) << field;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
    EXPECT_NE(refused.status().message().find(field), std::string::npos) << refused.status();
  }
}

class FourWorkerJobsTest : public JobsTest {
 protected:
  void SetUp() override { Start(4); }
};

// The same decisions on every rank of a 4-rank group.
TEST_F(FourWorkerJobsTest, ATeaCacheJobOnFourRanksEqualsOneProcess) {
  const v1::SampleJob job = TeaCacheJob(Job(72), 4);
  v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_GT(result.calls_reused(), 0);
  ExpectSameLatent(ReadLatent(result.latent()), Reference(job));
}

// Issue #27: MagCache through the head. Its schedule is fixed before the run and a step's cond
// and uncond calls skip together, so a job on one rank (cond and uncond batched), on a Ulysses-2
// group and over CFG-parallel ranks (one branch each) takes the same decisions as one process
// following the same schedule, and the result counts the calls it reused. The tiny model has no
// published ratios: the job gives its own (0.99 a step: two reused steps, then the third's
// accumulated error passes the default K of 2).
v1::SampleJob MagCacheJob(v1::SampleJob job) {
  job.set_steps(12);
  job.set_sampler("euler");
  job.mutable_cache()->set_kind("magcache");
  for (int i = 0; i < 24; ++i) job.mutable_cache()->add_mag_ratios(0.99);
  return job;
}

TEST_F(JobsTest, AMagCacheJobFollowsItsScheduleOnEveryMesh) {
  const v1::SampleJob job = MagCacheJob(Job(73));
  models::MagCacheSettings settings;  // the authors' defaults, the job's ratios
  settings.ratios.assign(job.cache().mag_ratios().begin(), job.cache().mag_ratios().end());
  const std::vector<bool> schedule = models::MagCacheSchedule(settings, job.steps(), true);
  const int reused_steps = static_cast<int>(std::count(schedule.begin(), schedule.end(), false));
  ASSERT_GT(reused_steps, 0);
  const Latent want = Reference(job);
  v1::SampleJob uncached = job;
  uncached.clear_cache();
  for (const auto& [ulysses, cfg] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{1, 2}}) {
    v1::SampleJob meshed = job;
    meshed.mutable_mesh()->set_ulysses(ulysses);
    meshed.mutable_mesh()->set_cfg(cfg);
    v1::JobInfo done = RunJob(meshed);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const v1::SampleResult result = ResultOf(done.job_id());
    // Every call of a reused step is reused: one or two calls a step (cond and uncond batched or
    // not; one branch per CFG rank).
    EXPECT_EQ(result.calls_reused() * job.steps(), reused_steps * result.model_calls())
        << meshed.mesh().ShortDebugString();
    EXPECT_GT(result.calls_reused(), 0);
    const Latent cached = ReadLatent(result.latent());
    ExpectSameLatent(cached, want);
    if (ulysses == 1 && cfg == 1) {
      EXPECT_GT(MaxAbsDiff(cached, Reference(uncached)), 1e-4);  // the reuse is real
    }
  }
  // Refused before anything is queued, naming the field.
  for (auto [field, change] :
       std::vector<std::pair<std::string, std::function<void(v1::SampleJob&)>>>{
           {"cache.mag_ratios", [](v1::SampleJob& j) { j.mutable_cache()->clear_mag_ratios(); }},
           {"cache.mag_ratios", [](v1::SampleJob& j) { j.mutable_cache()->add_mag_ratios(1); }},
           {"cache.coefficients", [](v1::SampleJob& j) { j.mutable_cache()->add_coefficients(1); }},
           {"cache.retention_ratio",
            [](v1::SampleJob& j) { j.mutable_cache()->set_retention_ratio(2); }},
           {"cache.max_skips", [](v1::SampleJob& j) { j.mutable_cache()->set_max_skips(-1); }},
           {"cache.kind", [](v1::SampleJob& j) { j.set_sampler("heun"); }},
       }) {
    v1::SampleJob bad = job;
    change(bad);
    auto refused = jobs_->SubmitSample(bad);
    ASSERT_FALSE(refused.ok()) << field;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
    EXPECT_NE(refused.status().message().find(field), std::string::npos) << refused.status();
  }
}

// EasyCache (ComfyUI's node's algorithm, samplers/easy_cache.h): decided from the step's outputs,
// which every rank holds (Ulysses' forward gathers them, the CFG ranks exchange theirs), so the
// job on every mesh equals one process reusing the same steps; the reuse is real.
TEST_F(JobsTest, AnEasyCacheJobEqualsOneProcessOnEveryMesh) {
  v1::SampleJob job = Job(91);
  job.set_steps(12);
  job.set_sampler("euler");
  job.mutable_cache()->set_kind("easycache");
  job.mutable_cache()->set_threshold(kEasyCacheThreshold);
  const Latent want = Reference(job);
  v1::SampleJob uncached = job;
  uncached.clear_cache();
  EXPECT_GT(MaxAbsDiff(want, Reference(uncached)), 1e-4);  // the reuse is real
  int reused_steps = -1;
  for (const auto& [ulysses, cfg] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{1, 2}}) {
    v1::SampleJob meshed = job;
    meshed.mutable_mesh()->set_ulysses(ulysses);
    meshed.mutable_mesh()->set_cfg(cfg);
    v1::JobInfo done = RunJob(meshed);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const v1::SampleResult result = ResultOf(done.job_id());
    ExpectSameLatent(ReadLatent(result.latent()), want);
    // Calls a step: two one after the other (one rank), one batch (Ulysses), one per CFG rank.
    const int calls_a_step = ulysses == 1 && cfg == 1 ? 2 : 1;
    EXPECT_EQ(result.model_calls(), job.steps() * calls_a_step) << meshed.mesh().ShortDebugString();
    ASSERT_EQ(result.calls_reused() % calls_a_step, 0);
    const int steps = result.calls_reused() / calls_a_step;
    EXPECT_GT(steps, 0);
    if (reused_steps >= 0) EXPECT_EQ(steps, reused_steps) << meshed.mesh().ShortDebugString();
    reused_steps = steps;
  }
  // Refused before anything is queued, naming the field.
  ExpectRefusedNaming(job, "cache.coefficients",
                      [](v1::SampleJob& j) { j.mutable_cache()->add_coefficients(1); });
  ExpectRefusedNaming(job, "cache.mag_ratios",
                      [](v1::SampleJob& j) { j.mutable_cache()->add_mag_ratios(1); });
  ExpectRefusedNaming(job, "cache.start_percent",
                      [](v1::SampleJob& j) { j.mutable_cache()->set_start_percent(1.5); });
  ExpectRefusedNaming(job, "cache.end_percent", [](v1::SampleJob& j) {
    j.mutable_cache()->set_start_percent(0.6);
    j.mutable_cache()->set_end_percent(0.5);
  });
  ExpectRefusedNaming(job, "cache.threshold",
                      [](v1::SampleJob& j) { j.mutable_cache()->set_threshold(-1); });
  ExpectRefusedNaming(job, "cache.start_percent", [](v1::SampleJob& j) {
    j.mutable_cache()->set_kind("magcache");
    j.mutable_cache()->set_start_percent(0.2);
  });
}

// A KSamplerAdvanced pair (steps 0-7, then 7-12 from its latent) takes the whole schedule's
// decisions at its steps (half the calls retained: steps 0-5 compute, then reuse, reuse, compute:
// a second job that started its own schedule would reuse none of its first five); the second
// job's first call has no residual to reuse and computes.
TEST_F(JobsTest, AdvancedMagCacheJobsFollowTheWholeSchedulesSteps) {
  v1::SampleJob job = MagCacheJob(Job(75));
  job.mutable_cache()->set_retention_ratio(0.5);
  models::MagCacheSettings settings;
  settings.retention_ratio = 0.5;
  settings.ratios.assign(job.cache().mag_ratios().begin(), job.cache().mag_ratios().end());
  const std::vector<bool> schedule = models::MagCacheSchedule(settings, job.steps(), true);
  const int split = 7;
  ASSERT_FALSE(schedule[split]);  // the boundary case
  ASSERT_TRUE(std::all_of(schedule.begin(), schedule.begin() + job.steps() - split,
                          [](bool compute) { return compute; }));
  v1::SampleJob first = job;
  first.set_end_step(split);
  first.set_return_with_leftover_noise(true);
  const v1::JobInfo first_done = RunJob(first);
  ASSERT_EQ(first_done.state(), v1::JOB_SUCCEEDED) << first_done.DebugString();
  const v1::SampleResult first_result = ResultOf(first_done.job_id());
  v1::SampleJob second = job;
  second.set_latent(first_result.latent());
  second.set_add_noise(false);
  second.set_start_step(split);
  const v1::JobInfo second_done = RunJob(second);
  ASSERT_EQ(second_done.state(), v1::JOB_SUCCEEDED) << second_done.DebugString();
  const v1::SampleResult second_result = ResultOf(second_done.job_id());
  auto reused = [&](int begin, int end) {
    return static_cast<int>(std::count(schedule.begin() + begin, schedule.begin() + end, false));
  };
  const int first_steps = reused(0, split);
  const int second_steps = reused(split, job.steps()) - 1;  // its first call computes
  ASSERT_GT(second_steps, 0);
  EXPECT_EQ(first_result.calls_reused() * split, first_steps * first_result.model_calls());
  EXPECT_EQ(second_result.calls_reused() * (job.steps() - split),
            second_steps * second_result.model_calls());
}

// Wan 2.2 A14B with MagCache: both experts follow one schedule with one state per branch across
// them (the authors share their counter and residual; text-to-video retains the start of each
// expert's calls), the same decisions on one rank and on a Ulysses-2 group; the reuse is real.
TEST_F(JobsTest, ATwoExpertMagCacheJobFollowsOneScheduleOnEveryMesh) {
  ASSERT_TRUE(MakeCheckpoint("low.safetensors", 2, seed_ + 1000).ok());
  v1::SampleJob job = MagCacheJob(Job(76));
  job.set_low_noise_model("low.safetensors");
  v1::JobInfo one = RunJob(job);
  ASSERT_EQ(one.state(), v1::JOB_SUCCEEDED) << one.DebugString();
  const v1::SampleResult result = ResultOf(one.job_id());
  EXPECT_GT(result.calls_reused(), 0);
  const Latent want = ReadLatent(result.latent());
  v1::SampleJob split = job;
  split.mutable_mesh()->set_ulysses(2);
  v1::JobInfo two = RunJob(split);
  ASSERT_EQ(two.state(), v1::JOB_SUCCEEDED) << two.DebugString();
  // The same steps reused (cond and uncond batched on one mesh, apart on the other).
  const v1::SampleResult split_result = ResultOf(two.job_id());
  EXPECT_EQ(split_result.calls_reused() * result.model_calls(),
            result.calls_reused() * split_result.model_calls());
  ExpectSameLatent(ReadLatent(ResultOf(two.job_id()).latent()), want);
  v1::SampleJob uncached = job;
  uncached.clear_cache();
  v1::JobInfo plain = RunJob(uncached);
  ASSERT_EQ(plain.state(), v1::JOB_SUCCEEDED) << plain.DebugString();
  EXPECT_GT(MaxAbsDiff(ReadLatent(ResultOf(plain.job_id()).latent()), want), 1e-4);
}

// The same decisions on every rank of a 4-rank group (Ulysses 2 x CFG 2).
TEST_F(FourWorkerJobsTest, AMagCacheJobOnFourRanksEqualsOneProcess) {
  v1::SampleJob job = MagCacheJob(Job(74));
  job.mutable_mesh()->set_ulysses(2);
  job.mutable_mesh()->set_cfg(2);
  v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_GT(result.calls_reused(), 0);
  ExpectSameLatent(ReadLatent(result.latent()), Reference(job));
}

TEST_F(JobsTest, ChainedAdvancedJobsContinueOneRun) {
  v1::SampleJob full = Job(23);
  full.set_sampler("euler");
  full.set_steps(5);
  v1::JobInfo whole = RunJob(full);
  ASSERT_EQ(whole.state(), v1::JOB_SUCCEEDED) << whole.DebugString();
  const auto [first_half, chained] = RunChained(full, 2);
  const Latent one = ReadLatent(ResultOf(whole.job_id()).latent());
  EXPECT_LT(testing_util::RelativeL2(chained, one), 1e-5);
  // The first half is not the whole run (it kept its noise).
  EXPECT_GT(testing_util::RelativeL2(first_half, one), 1e-2);
}

// Wan 2.2 A14B as one job: both experts on the group, the switch at the default T2V boundary
// (0.875: of the 4-step shift-5 schedule 1, 0.9375, 0.833, 0.625 the first two run on the
// high-noise expert), equal to ComfyUI's pattern of two chained KSamplerAdvanced jobs; a second
// job finds both experts resident.
TEST_F(JobsTest, TwoExpertJobEqualsTwoChainedJobs) {
  ASSERT_TRUE(MakeCheckpoint("low.safetensors", 2, seed_ + 1000).ok());
  v1::SampleJob one = Job(29);
  one.mutable_mesh()->set_ulysses(2);
  one.set_low_noise_model("low.safetensors");
  std::vector<v1::JobEvent> events;
  v1::JobInfo done = RunJob(one, &events);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent experts = ReadLatent(ResultOf(done.job_id()).latent());
  int last_step = 0;
  for (const v1::JobEvent& event : events) {
    v1::SampleProgress progress;
    if (event.has_progress() && progress.ParseFromString(event.progress()) && progress.step() > 0) {
      EXPECT_EQ(progress.total(), 4);
      last_step = progress.step();
    }
  }
  EXPECT_EQ(last_step, 4);  // the two runs' steps counted as one job's
  // The next job on the group finds both experts loaded.
  v1::JobInfo again = RunJob(one);
  ASSERT_EQ(again.state(), v1::JOB_SUCCEEDED) << again.DebugString();
  EXPECT_TRUE(ResultOf(again.job_id()).model_was_resident());
  EXPECT_LT(MaxAbsDiff(ReadLatent(ResultOf(again.job_id()).latent()), experts), 1e-6);

  v1::SampleJob chain = Job(29);
  chain.mutable_mesh()->set_ulysses(2);
  const Latent chained = RunChained(chain, 2, "low.safetensors").second;
  EXPECT_LT(MaxAbsDiff(experts, chained), 1e-6);
  // The low-noise expert matters: the same job on the high-noise model alone differs.
  v1::JobInfo alone = RunJob(Job(29));
  ASSERT_EQ(alone.state(), v1::JOB_SUCCEEDED);
  EXPECT_GT(MaxAbsDiff(ReadLatent(ResultOf(alone.job_id()).latent()), experts), 1e-3);
}

// Issue #23, item 2: a caller that reaches a worker directly (with the cluster token) and asks
// its DiffusionActor to load a file outside the model roots is refused by the worker itself, and
// learns nothing of the file's contents (a parse error used to quote its first 8 bytes).
TEST_F(JobsTest, AWorkerRefusesModelFilesOutsideItsRoots) {
  v1::JobInfo done = RunJob(Job());  // a 1-rank group, its actor alive
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const std::string secret = dir_->path() + "/secret.safetensors";
  std::ofstream(secret) << "root:x:0:0:root:/root:/bin/bash\n";
  auto client = cluster_->Connect();
  auto state = client->ClusterState();
  ASSERT_TRUE(state.ok()) << state.status();
  const v1::GroupInfo* group = nullptr;
  for (const v1::GroupInfo& g : state->groups()) {
    if (g.state() == v1::GROUP_READY && g.members_size() == 1) group = &g;
  }
  ASSERT_NE(group, nullptr) << state->DebugString();
  v1::SampleCall call;
  call.set_job_id("intruder");
  *call.mutable_job() = Job();
  for (const std::string& file :
       {secret, std::string("/etc/passwd"), models_ + "/../secret.safetensors"}) {
    call.clear_model_files();
    call.add_model_files(file);
    v1::CallHeader header;
    header.set_actor_id(group->members(0).actor_id());
    header.set_method("sample");
    header.set_group_id(group->group_id());
    header.set_group_incarnation(group->incarnation());
    auto result = rpc::CallActorOnce(*client->WorkerStub(group->members(0).address()),
                                     rpc::ClusterToken(kToken), header, call.SerializeAsString(),
                                     absl::Seconds(30), {});
    ASSERT_FALSE(result.ok()) << file;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kPermissionDenied) << result.status();
    EXPECT_NE(result.status().message().find("outside this worker's model roots"),
              std::string::npos)
        << result.status();
    EXPECT_EQ(result.status().message().find("root:x"), std::string::npos) << result.status();
  }
  // The worker still serves jobs.
  EXPECT_EQ(RunJob(Job()).state(), v1::JOB_SUCCEEDED);
}

#else  // RAYLIGHT_TEST_GPU

// Device memory in use on each GPU by NVML's count (MiB), by index; empty without nvidia-smi.
std::map<int, int64_t> GpuMemoryUsedMiB() {
  std::map<int, int64_t> used;
  FILE* pipe = popen("nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits", "r");
  if (pipe == nullptr) return used;
  char line[256];
  while (fgets(line, sizeof line, pipe) != nullptr) {
    int index = 0;
    long long mib = 0;
    if (sscanf(line, "%d, %lld", &index, &mib) == 2) used[index] = mib;
  }
  pclose(pipe);
  return used;
}

TEST_F(JobsTest, CfgParallelJobOnTwoGpusMatchesOneGpu) {
  v1::SampleJob job = Job(31);
  job.mutable_mesh()->set_cfg(2);
  v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  ExpectSameLatent(ReadLatent(ResultOf(done.job_id()).latent()), Reference(job));
}

// Workers whose models may hold 1.6 checkpoints: a second model evicts the least recently used.
class ModelMemoryLimitTest : public JobsTest {
 protected:
  void SetUp() override {
    model_memory_limit_checkpoints_ = 1.6;
    Start(2);
  }
};

TEST_F(ModelMemoryLimitTest, LeastRecentlyUsedModelIsEvictedAndTheWorkerLives) {
  fs::copy_file(models_ + "/tiny.safetensors", models_ + "/other.safetensors");
  auto pids = [&] {
    std::set<int64_t> out;
    auto state = cluster_->Connect()->ClusterState();
    EXPECT_TRUE(state.ok());
    if (state.ok()) {
      for (const auto& worker : state->workers()) out.insert(worker.pid());
    }
    return out;
  };
  const std::set<int64_t> workers_before = pids();
  v1::SampleJob job = Job();
  job.mutable_mesh()->set_ulysses(2);
  v1::JobInfo first = RunJob(job);
  ASSERT_EQ(first.state(), v1::JOB_SUCCEEDED) << first.DebugString();
  v1::SampleJob other = job;
  other.set_model("other.safetensors");
  v1::JobInfo second = RunJob(other);
  ASSERT_EQ(second.state(), v1::JOB_SUCCEEDED) << second.DebugString();
  // Each rank now holds the second model alone.
  auto models = jobs_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  int holding = 0;
  for (const auto& worker : *models) {
    if (worker.models.empty()) continue;
    ++holding;
    ASSERT_EQ(worker.models.size(), 1u);
    EXPECT_NE(worker.models[0].path().find("other.safetensors"), std::string::npos);
    EXPECT_GT(worker.models[0].device_bytes(), 0);
  }
  EXPECT_EQ(holding, 2);
  EXPECT_NE(cluster_->Logs().find("to make room"), std::string::npos);
  // The first model comes back (loaded again, evicting the other) with the same result.
  v1::JobInfo third = RunJob(job);
  ASSERT_EQ(third.state(), v1::JOB_SUCCEEDED) << third.DebugString();
  const v1::SampleResult again = ResultOf(third.job_id());
  EXPECT_FALSE(again.model_was_resident());
  EXPECT_EQ(again.latent(), ResultOf(first.job_id()).latent());
  EXPECT_EQ(pids(), workers_before);  // no worker was killed to free memory
}

// Issue #6's residency: 50 load / unload cycles end with the GPUs' memory at its baseline.
TEST_F(JobsTest, LoadUnloadCyclesReturnDeviceMemory) {
  v1::SampleJob load = Job();
  load.mutable_mesh()->set_ulysses(2);
  auto cycle = [&] {
    auto submitted = jobs_->SubmitLoad(load);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    auto done = jobs_->Wait(submitted->job_id(), absl::Seconds(120));
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString();
    auto unloaded = jobs_->UnloadModels("");
    ASSERT_TRUE(unloaded.ok()) << unloaded.status();
    EXPECT_EQ(unloaded->size(), 2u);  // one copy per rank
  };
  cycle();  // contexts, NCCL and cuBLAS workspaces exist from here on
  const std::map<int, int64_t> baseline = GpuMemoryUsedMiB();
  ASSERT_FALSE(baseline.empty()) << "nvidia-smi gave nothing";
  const int64_t model_mib =
      static_cast<int64_t>(fs::file_size(models_ + "/tiny.safetensors")) >> 20;
  int64_t peak_growth = 0;
  for (int i = 0; i < 50 && !HasFatalFailure(); ++i) {
    auto submitted = jobs_->SubmitLoad(load);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    ASSERT_TRUE(jobs_->Wait(submitted->job_id(), absl::Seconds(120)).ok());
    // Loaded: the measurement really sees the model.
    for (const auto& [index, mib] : GpuMemoryUsedMiB()) {
      peak_growth = std::max(peak_growth, mib - baseline.at(index));
    }
    ASSERT_TRUE(jobs_->UnloadModels("").ok());
  }
  EXPECT_GE(peak_growth, model_mib * 9 / 10) << "a loaded model did not show in NVML's count";
  for (const auto& [index, mib] : GpuMemoryUsedMiB()) {
    EXPECT_LE(std::abs(mib - baseline.at(index)), std::max<int64_t>(2, baseline.at(index) / 100))
        << "GPU " << index << ": " << mib << " MiB after 50 cycles, " << baseline.at(index)
        << " MiB at the start";
  }
}

#endif  // RAYLIGHT_TEST_GPU

}  // namespace
}  // namespace raylight::jobs_testing
