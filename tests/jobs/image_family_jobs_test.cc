// Qwen-Image, Chroma and FLUX.2 jobs through the cluster (issue #26) against ComfyUI's own
// sampling: a tiny random checkpoint of the family in the model root, random conditioning files,
// and the same job run by ComfyUI 0.3.64's comfy.sample.sample with its model of the family
// (tests/models/<family>_reference.py --sample): Qwen-Image with ModelSamplingFlux at shift 1.15
// and the Wan21 latent format (a LATENT [1, 16, 1, H, W]); Chroma with ModelSamplingFlux and
// Flux's latent format, real CFG. ComfyUI 0.3.64 predates FLUX.2: its reference is diffusers'
// network in ComfyUI's sampling code with newer ComfyUI's Flux2 conventions (shift 2.02, text
// padded in front to 512, a 128-channel identity latent format). fp32 on CPU workers: max abs
// difference under 1e-4 on one rank, under Ulysses 2 with FSDP-placed weights, layer swap, data
// parallelism, Ring 2 and CFG parallel, even and odd patch counts. No code of the engine or the
// head names these families: each is a folder.
#include <algorithm>

#include "models/core/mag_cache.h"
#include "tests/jobs/jobs_fixture.h"

namespace raylight::jobs_testing {
namespace {

struct Family {
  std::string name;
  std::string reference;              // its reference script
  std::string config;                 // the script's JSON config of a tiny model
  std::vector<int64_t> latent_shape;  // of a 96 x 64 job's LATENT
  std::string checkpoint;             // the script's checkpoint to sample with
  double cfg = 2.0;                   // a guidance-distilled model's jobs run at 1
  // Max abs difference from the reference. FLUX.2's attends over 512 (zero-padded) text tokens
  // in every block in diffusers' op order: 3e-5..7e-5 measured over runs on latents of std 1.5,
  // max 6, so 2e-4 (the others 1e-4, ComfyUI's own network).
  double tolerance = 1e-4;
  bool cfg_parallel = true;  // not for a guidance-distilled model
  bool references = false;   // takes reference latents
  // Its LoRAs' reference: ComfyUI's sampling with the LoRA (flux_lora_reference.py writes them
  // for BFL's names), else the checkpoint with the LoRA merged offline by its definition
  // (lora_reference.py --family <name>).
  bool comfyui_loras = false;
  // The VAE here that decodes its latents (ModelInfo::vae): "wan2.1" (Qwen-Image's), "kl" (the
  // image VAE: Chroma's, Flux.1's, FLUX.2's); empty: none yet.
  std::string vae;
  // kl_vae_reference.py's config of its tiny image VAE: four levels (the 8x of Flux's VAE), 16
  // latent channels; FLUX.2's 32 in 2x2 patches (its 128-channel LATENT at 16x).
  std::string kl_vae_config =
      R"({"latent": 16, "channels": [32, 32, 32, 32], "layers": 1, "post_quant": false, )"
      R"("prefix": "", "height": 2, "width": 2, "batch": 1})";
};

std::string PrintFamily(const ::testing::TestParamInfo<Family>& info) { return info.param.name; }
void PrintTo(const Family& family, std::ostream* out) { *out << family.name; }

class ImageFamilyJobsTest : public JobsTest, public ::testing::WithParamInterface<Family> {
 protected:
  void SetUp() override {
    JobsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const Family& family = GetParam();
    const absl::Status made = RunTools(
        {{RAYLIGHT_TEST_PYTHON, family.reference, "--config", family.config, "--seed",
          absl::StrCat(seed_), "--out-dir", dir_->path(), "--skip-diffusers", "--comfyui-tarball",
          RAYLIGHT_COMFYUI_TARBALL, "--workdir", dir_->path() + "/comfyui"},
         {RAYLIGHT_TEST_PYTHON, family.reference, "--conditioning",
          dir_->path() + "/family-positive.safetensors", "--config", family.config, "--seed",
          absl::StrCat(seed_ + 1), "--tokens", "9"},
         {RAYLIGHT_TEST_PYTHON, family.reference, "--conditioning",
          dir_->path() + "/family-negative.safetensors", "--config", family.config, "--seed",
          absl::StrCat(seed_ + 2), "--tokens", "4"}},
        "family.log", std::chrono::seconds(300));
    ASSERT_TRUE(made.ok()) << made;
    fs::rename(dir_->path() + "/" + family.checkpoint, models_ + "/family-tiny.safetensors");
  }

  // 96 x 64 pixels: a 8 x 12 latent, 24 image tokens beside 9 text tokens (33: Ulysses 2 pads).
  v1::SampleJob FamilyJob() const {
    v1::SampleJob job;
    job.set_model("family-tiny.safetensors");
    job.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/family-positive.safetensors"));
    job.set_negative(testing_util::ReadFileOrEmpty(dir_->path() + "/family-negative.safetensors"));
    job.set_width(96);
    job.set_height(64);
    job.set_steps(4);
    job.set_cfg(GetParam().cfg);
    job.set_sampler("euler");
    job.set_scheduler("simple");
    job.set_seed(7);
    // Previews as raylightctl asks for them by default: a family whose latent format has no
    // Latent2RGB factors (FLUX.2's) must still run its job.
    job.set_preview_every(2);
    return job;
  }

  // ComfyUI's LATENT for `job`, with `loras` (a JSON list of {"path", "strength"}) applied.
  Latent ComfyReference(const v1::SampleJob& job, const std::string& loras = "[]") {
    const std::string out = dir_->path() + "/comfyui-sampled.safetensors";
    const std::string c =
        absl::StrCat(R"({"loras": )", loras, R"(, "config": )", GetParam().config,
                     R"(, "checkpoint": ")", models_, "/", job.model(), R"(", "positive": ")",
                     dir_->path(), R"(/family-positive.safetensors", "negative": ")", dir_->path(),
                     R"(/family-negative.safetensors", "width": )", job.width(), R"(, "height": )",
                     job.height(), R"(, "steps": )", job.steps(), R"(, "cfg": )", job.cfg(),
                     R"(, "sampler": ")", job.sampler(), R"(", "scheduler": ")", job.scheduler(),
                     R"(", "seed": )", job.seed(), R"(, "out": ")", out, R"("})");
    const absl::Status ran =
        RunTools({{RAYLIGHT_TEST_PYTHON, GetParam().reference, "--sample", c, "--comfyui-tarball",
                   RAYLIGHT_COMFYUI_TARBALL, "--workdir", dir_->path() + "/comfyui"}},
                 "comfyui-sample.log", std::chrono::seconds(300));
    EXPECT_TRUE(ran.ok()) << ran;
    return ReadLatent(testing_util::ReadFileOrEmpty(out));
  }

  // `job`'s LATENT against `want` (ComfyUI's, or a reference job's), max abs difference 1e-4.
  // A job that loads its model warms it at the job's shape first.
  void ExpectSameAs(const v1::SampleJob& job, const Latent& want) {
    std::vector<v1::JobEvent> events;
    const v1::JobInfo done = RunJob(job, &events);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const v1::SampleResult result = ResultOf(done.job_id());
    if (!result.model_was_resident()) EXPECT_TRUE(Warmed(events)) << job.placement();
    const Latent got = ReadLatent(result.latent());
    ASSERT_EQ(got.shape, want.shape);
    EXPECT_LT(MaxAbsDiff(got, want), GetParam().tolerance)
        << job.mesh().ShortDebugString() << job.placement();
    std::printf("%s job (%s %s) vs reference: max abs diff %.3g\n", GetParam().name.c_str(),
                job.mesh().ShortDebugString().c_str(), job.placement().c_str(),
                MaxAbsDiff(got, want));
  }
};

TEST_P(ImageFamilyJobsTest, OneRankAndUlyssesWithShardedWeightsEqualComfyUisSampling) {
  v1::SampleJob job = FamilyJob();
  const Latent want = ComfyReference(job);
  EXPECT_EQ(want.shape, GetParam().latent_shape);
  ExpectSameAs(job, want);
  job.mutable_mesh()->set_ulysses(2);
  job.set_placement("fsdp");
  ExpectSameAs(job, want);
}

// Layer swap (half the blocks' bytes on the device) and data parallelism (two seeds, one per
// rank: the job's seed and the next) give ComfyUI's latents of those seeds.
TEST_P(ImageFamilyJobsTest, LayerSwapAndDataParallelSeedsEqualComfyUis) {
  v1::SampleJob job = FamilyJob();
  const Latent want = ComfyReference(job);
  v1::SampleJob swapped = job;
  swapped.set_placement("swap");
  swapped.set_swap_budget(0.5);
  ExpectSameAs(swapped, want);
  v1::SampleJob next_seed = job;
  next_seed.set_seed(job.seed() + 1);
  const Latent want_next = ComfyReference(next_seed);
  job.mutable_mesh()->set_dp(2);
  const v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent got = ReadLatent(ResultOf(done.job_id()).latent());
  ASSERT_EQ(got.shape.size(), want.shape.size());
  ASSERT_EQ(got.shape[0], 2);
  const size_t half = got.values.size() / 2;
  for (const auto& [sample, expected] : {std::pair{0, &want}, std::pair{1, &want_next}}) {
    Latent one{expected->shape, std::vector<float>(got.values.begin() + sample * half,
                                                   got.values.begin() + (sample + 1) * half)};
    EXPECT_LT(MaxAbsDiff(one, *expected), GetParam().tolerance) << "dp rank " << sample;
  }
}

TEST_P(ImageFamilyJobsTest, RingAndCfgParallelOnOddPatchCountsEqualComfyUis) {
  // 80 x 112 pixels: 10 x 14 latent, 5 x 7 patches (Qwen-Image: ComfyUI's centring of an odd
  // count).
  v1::SampleJob job = FamilyJob();
  job.set_width(112);
  job.set_height(80);
  job.set_sampler("dpmpp_2m");
  const Latent want = ComfyReference(job);
  job.mutable_mesh()->set_ring(2);
  ExpectSameAs(job, want);
  if (!GetParam().cfg_parallel) return;  // refused for guidance-distilled models (flux_jobs_test)
  job.mutable_mesh()->set_ring(1);
  job.mutable_mesh()->set_cfg(2);
  ExpectSameAs(job, want);
}

// A reference image's LATENT in the positive conditioning (ComfyUI's ReferenceLatent node):
// Qwen-Image-Edit's tokens join the image's and the job equals ComfyUI's; Chroma takes none and
// refuses the file by name.
TEST_P(ImageFamilyJobsTest, AReferenceLatentJobEqualsComfyUisOrIsRefused) {
  const std::string edit = dir_->path() + "/family-positive.safetensors";
  ASSERT_TRUE(RunTools({{RAYLIGHT_TEST_PYTHON, GetParam().reference, "--conditioning", edit,
                         "--config", GetParam().config, "--seed", absl::StrCat(seed_ + 3),
                         "--tokens", "9", "--references", "6x10"}},
                       "family.log", std::chrono::seconds(120))
                  .ok());
  v1::SampleJob job = FamilyJob();
  if (!GetParam().references) {
    ExpectRefusedNaming(job, "positive", [](v1::SampleJob&) {});
    return;
  }
  job.mutable_mesh()->set_ulysses(2);
  ExpectSameAs(job, ComfyReference(job));
}

// LoRAs in diffusers' / PEFT's names and in kohya's, merged at load, on one rank and under
// Ulysses 2 with FSDP-placed weights (each rank merges its shard's rows): Qwen-Image's and
// FLUX.2's (diffusers-named checkpoints) equal the checkpoint with the LoRA merged offline by its
// definition (lora_reference.py); Chroma's equal ComfyUI's sampling with the LoRA applied to its
// BFL-named weights, the diffusers form by ComfyUI's row offsets into the fused projections.
TEST_P(ImageFamilyJobsTest, LorasMergeAsTheirReferenceMergesThem) {
  const Family& family = GetParam();
  for (const bool kohya : {false, true}) {
    const std::string suffix = kohya ? "-kohya" : "";
    const std::string lora_path = models_ + "/style" + suffix + ".safetensors";
    std::vector<std::string> argv;
    if (family.comfyui_loras) {
      argv = {RAYLIGHT_TEST_PYTHON,
              RAYLIGHT_FLUX_LORA_REFERENCE,
              "--base=" + models_ + "/family-tiny.safetensors",
              "--lora=" + lora_path,
              kohya ? "--form=kohya" : "--form=diffusers",
              absl::StrCat("--seed=", seed_ + 5)};
    } else {
      argv = {RAYLIGHT_TEST_PYTHON,
              RAYLIGHT_LORA_REFERENCE,
              "--base=" + models_ + "/family-tiny.safetensors",
              "--lora=" + lora_path,
              "--merged=" + models_ + "/merged" + suffix + ".safetensors",
              "--strength=0.8",
              absl::StrCat("--seed=", seed_ + 5),
              "--family=" + family.name};
      if (kohya) argv.push_back("--kohya");
    }
    ASSERT_TRUE(RunTools({argv}, "lora.log", std::chrono::seconds(120)).ok());
    v1::SampleJob job = FamilyJob();
    v1::LoraRef* lora = job.add_loras();
    lora->set_name("style" + suffix + ".safetensors");
    lora->set_strength(0.8);
    Latent want;
    if (family.comfyui_loras) {
      want =
          ComfyReference(job, absl::StrCat(R"([{"path": ")", lora_path, R"(", "strength": 0.8}])"));
    } else {
      v1::SampleJob merged = FamilyJob();
      merged.set_model("merged" + suffix + ".safetensors");
      const v1::JobInfo reference = RunJob(merged);
      ASSERT_EQ(reference.state(), v1::JOB_SUCCEEDED) << reference.DebugString();
      want = ReadLatent(ResultOf(reference.job_id()).latent());
    }
    if (!kohya) {  // the LoRA changes the result (it is not a no-op that the equality hides)
      const v1::JobInfo base = RunJob(FamilyJob());
      EXPECT_GT(MaxAbsDiff(ReadLatent(ResultOf(base.job_id()).latent()), want), 1e-3);
    }
    ExpectSameAs(job, want);
    job.mutable_mesh()->set_ulysses(2);
    job.set_placement("fsdp");
    ExpectSameAs(job, want);
  }
}

// MagCache (issue #27) on the Flux forward: the job's own ratios (the tiny models have no
// published ones: 0.99 a step, so two reused steps in every three past the retained fifth), one
// schedule for the run, so a job on one rank, under Ulysses 2 with FSDP-placed weights and
// (guided models) over CFG-parallel ranks gives the same latent; every call of a reused step is
// counted, and the reuse moves the latent.
TEST_P(ImageFamilyJobsTest, AMagCacheJobFollowsItsScheduleOnEveryMesh) {
  v1::SampleJob job = FamilyJob();
  job.set_steps(8);
  job.mutable_cache()->set_kind("magcache");
  for (int i = 0; i < 16; ++i) job.mutable_cache()->add_mag_ratios(0.99);
  models::MagCacheSettings settings;
  settings.ratios.assign(job.cache().mag_ratios().begin(), job.cache().mag_ratios().end());
  const std::vector<bool> schedule =
      models::MagCacheSchedule(settings, job.steps(), job.cfg() != 1.0);
  const int reused_steps = static_cast<int>(std::count(schedule.begin(), schedule.end(), false));
  ASSERT_GT(reused_steps, 0);
  v1::SampleJob uncached = job;
  uncached.clear_cache();
  const v1::JobInfo plain = RunJob(uncached);
  ASSERT_EQ(plain.state(), v1::JOB_SUCCEEDED) << plain.DebugString();
  const v1::JobInfo one = RunJob(job);
  ASSERT_EQ(one.state(), v1::JOB_SUCCEEDED) << one.DebugString();
  const v1::SampleResult result = ResultOf(one.job_id());
  EXPECT_EQ(result.calls_reused() * job.steps(), reused_steps * result.model_calls());
  const Latent want = ReadLatent(result.latent());
  EXPECT_GT(MaxAbsDiff(ReadLatent(ResultOf(plain.job_id()).latent()), want), 1e-3);
  v1::SampleJob sharded = job;
  sharded.mutable_mesh()->set_ulysses(2);
  sharded.set_placement("fsdp");
  ExpectSameAs(sharded, want);
  if (GetParam().cfg_parallel) {
    v1::SampleJob split = job;
    split.mutable_mesh()->set_cfg(2);
    ExpectSameAs(split, want);
  }
  // Nobody calibrated TeaCache for these models; MagCache's numbers are checked as for Wan.
  ExpectRefusedNaming(job, "cache.coefficients", [](v1::SampleJob& j) {
    j.mutable_cache()->set_kind("teacache");
    j.mutable_cache()->clear_mag_ratios();
  });
  ExpectRefusedNaming(job, "cache.mag_ratios",
                      [](v1::SampleJob& j) { j.mutable_cache()->clear_mag_ratios(); });
}

// fp8 compute, EasyCache and TeaCache on each family of the Flux forward: fp8 within
// fp8_linear.h's documented 10% of the default job; EasyCache (decided at the sampler from the
// step's outputs) under Ulysses 2 equal to one rank, with steps reused (the tiny random models
// change fast: the node's largest threshold, from the first tenth of the schedule); TeaCache
// (the forward's first modulated image rows, the job's coefficients) under Ulysses 2 with FSDP
// equal to one rank, with calls reused, and refused where CFG parallelism would split its batch.
TEST_P(ImageFamilyJobsTest, Fp8ComputeEasyCacheAndTeaCacheJobs) {
  v1::SampleJob job = FamilyJob();
  job.set_steps(10);
  const v1::JobInfo plain = RunJob(job);
  ASSERT_EQ(plain.state(), v1::JOB_SUCCEEDED) << plain.DebugString();
  const Latent full = ReadLatent(ResultOf(plain.job_id()).latent());
  v1::SampleJob fp8 = job;
  fp8.set_compute("fp8");
  const v1::JobInfo computed = RunJob(fp8);
  ASSERT_EQ(computed.state(), v1::JOB_SUCCEEDED) << computed.DebugString();
  const double error =
      testing_util::RelativeL2(ReadLatent(ResultOf(computed.job_id()).latent()), full);
  std::printf("%s fp8 compute vs the default job: relative L2 %.3g\n", GetParam().name.c_str(),
              error);
  EXPECT_LT(error, 0.10);
  EXPECT_GT(error, 1e-4);
  v1::SampleJob cached = job;
  cached.mutable_cache()->set_kind("easycache");
  cached.mutable_cache()->set_threshold(3.0);
  cached.mutable_cache()->set_start_percent(0.1);
  const v1::JobInfo one = RunJob(cached);
  ASSERT_EQ(one.state(), v1::JOB_SUCCEEDED) << one.DebugString();
  const v1::SampleResult result = ResultOf(one.job_id());
  EXPECT_GT(result.calls_reused(), 0);
  const Latent want = ReadLatent(result.latent());
  EXPECT_GT(MaxAbsDiff(want, full), 1e-3);
  v1::SampleJob meshed = cached;
  meshed.mutable_mesh()->set_ulysses(2);
  ExpectSameAs(meshed, want);

  // TeaCache on the relative L1 change itself (coefficients x + 0). How fast a random tiny model's
  // modulated input changes varies from draw to draw (at 0.5, 0 to 8 of 20 calls reused over a
  // dozen draws), so the threshold is the first of these at which the cache acts on this draw;
  // past the last, every call but the counter's first and last is reused whatever the values.
  v1::SampleJob tea = job;
  tea.mutable_cache()->set_kind("teacache");
  tea.mutable_cache()->add_coefficients(1.0);
  tea.mutable_cache()->add_coefficients(0.0);
  v1::SampleResult tea_result;
  for (const double threshold : {0.5, 2.0, 8.0, 1e9}) {
    tea.mutable_cache()->set_threshold(threshold);
    const v1::JobInfo tea_done = RunJob(tea);
    ASSERT_EQ(tea_done.state(), v1::JOB_SUCCEEDED) << tea_done.DebugString();
    tea_result = ResultOf(tea_done.job_id());
    std::printf("%s teacache at %g: %d of %d calls reused\n", GetParam().name.c_str(), threshold,
                tea_result.calls_reused(), tea_result.model_calls());
    if (tea_result.calls_reused() > 0) break;
  }
  EXPECT_GT(tea_result.calls_reused(), 0);
  const Latent tea_latent = ReadLatent(tea_result.latent());
  EXPECT_GT(MaxAbsDiff(tea_latent, full), 1e-3);
  v1::SampleJob tea_sharded = tea;
  tea_sharded.mutable_mesh()->set_ulysses(2);
  tea_sharded.set_placement("fsdp");
  ExpectSameAs(tea_sharded, tea_latent);
  if (GetParam().cfg_parallel) {
    ExpectRefusedNaming(tea, "mesh.cfg", [](v1::SampleJob& j) { j.mutable_mesh()->set_cfg(2); });
  }
}

// Decoding on the cluster: Qwen-Image's VAE is a Wan 2.1 VAE (its own weights, ComfyUI's
// qwen_image_vae.safetensors; here a narrow random one in the root's vae/), its frames decoded
// over a 2-rank group (a band of rows each); Chroma's is Flux.1's image VAE (ae.safetensors;
// here diffusers' AutoencoderKL at narrow widths and random weights, in BFL's names), FLUX.2's
// its own (AutoencoderKLFlux2: its 128-channel LATENT is 32 channels in 2x2 patches, batch-
// normalised), decoded on rank 0. Either equals raylight-vae's one-process decode of the job's
// latent, and `output` video makes a one-frame PNG. The families no VAE here decodes refuse
// `output` and `vae` by name.
TEST_P(ImageFamilyJobsTest, AJobDecodesItsImageWhereItsVaeIsHere) {
  fs::create_directories(models_ + "/vae");
  const std::string vae_path =
      models_ + "/vae/" +
      (GetParam().vae == "kl" ? "ae.safetensors" : "qwen_image_vae.safetensors");
  if (GetParam().vae == "kl") {
    const std::string sub = dir_->path() + "/kl-vae";
    fs::create_directories(sub);
    std::ofstream(sub + "/config.json") << GetParam().kl_vae_config;
    ASSERT_TRUE(RunTools({{RAYLIGHT_TEST_PYTHON, RAYLIGHT_KL_VAE_REFERENCE,
                           "--config=" + sub + "/config.json", absl::StrCat("--seed=", seed_ + 7),
                           "--out-dir=" + sub}},
                         "vae.log", std::chrono::seconds(120))
                    .ok());
    fs::copy_file(sub + "/ldm.safetensors", vae_path);
  } else {
    ASSERT_TRUE(RunTools({{kBin + "/raylight-vae", "make-random", "--preset=wan2.1", "--width=8",
                           absl::StrCat("--seed=", seed_ + 7), "--out=" + vae_path}},
                         "vae.log", std::chrono::seconds(120))
                    .ok());
  }
  v1::SampleJob job = FamilyJob();
  job.set_output("frames");
  if (GetParam().vae.empty()) {
    ExpectRefusedNaming(job, "output", [](v1::SampleJob&) {});
    ExpectRefusedNaming(FamilyJob(), "vae",
                        [](v1::SampleJob& j) { j.set_vae("vae/qwen_image_vae.safetensors"); });
    return;
  }
  job.mutable_mesh()->set_ulysses(2);
  const v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_EQ(result.video_format(), "frames");
  const std::string latent_path = dir_->path() + "/job.latent";
  const std::string frames_path = dir_->path() + "/job-frames.safetensors";
  const std::string tool_path = dir_->path() + "/tool-frames.safetensors";
  std::ofstream(latent_path, std::ios::binary) << result.latent();
  std::ofstream(frames_path, std::ios::binary) << result.video();
  ASSERT_TRUE(RunTools({{kBin + "/raylight-vae", "decode", "--vae=" + vae_path,
                         "--latent=" + latent_path, "--out=" + tool_path}},
                       "decode.log", std::chrono::seconds(120))
                  .ok());
  const auto [job_frames, job_shape] = FrameBytes(frames_path);
  const auto [tool_frames, tool_shape] = FrameBytes(tool_path);
  EXPECT_EQ(job_shape, (std::vector<int64_t>{1, 64, 96, 3}));
  ASSERT_EQ(job_shape, tool_shape);
  // Bands and the whole image differ in float rounding only: a level at a few pixels.
  int64_t differing = 0, worst = 0;
  for (size_t i = 0; i < job_frames.size(); ++i) {
    const int diff = std::abs(int(uint8_t(job_frames[i])) - int(uint8_t(tool_frames[i])));
    differing += diff > 0;
    worst = std::max<int64_t>(worst, diff);
  }
  EXPECT_LE(worst, 1);
  EXPECT_LT(double(differing) / job_frames.size(), 0.01);
  job.set_output("video");  // one frame: a PNG
  const v1::JobInfo png = RunJob(job);
  ASSERT_EQ(png.state(), v1::JOB_SUCCEEDED) << png.DebugString();
  const v1::SampleResult image = ResultOf(png.job_id());
  EXPECT_EQ(image.video_format(), "png");
  EXPECT_EQ(image.video().substr(1, 3), "PNG");
  ExpectRefusedNaming(FamilyJob(), "vae", [&](v1::SampleJob& j) {
    j.set_vae(fs::path(vae_path).lexically_relative(models_).string());
  });
}

TEST_P(ImageFamilyJobsTest, WhatTheseJobsCannotHaveIsRefusedNamingTheField) {
  const v1::SampleJob job = FamilyJob();
  ExpectRefusedNaming(job, "prompt", [](v1::SampleJob& j) {
    j.clear_positive();
    j.set_prompt("a red fox");
  });
  ExpectRefusedNaming(job, "frames", [](v1::SampleJob& j) { j.set_frames(5); });
  ExpectRefusedNaming(job, "width", [](v1::SampleJob& j) { j.set_width(100); });
  // Not a safetensors file, then a Wan conditioning file (its extra tensors are not the
  // family's).
  ExpectRefusedNaming(job, "positive", [&](v1::SampleJob& j) {
    j.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/positive.safetensors") + "x");
  });
  if (job.cfg() != 1.0) {
    ExpectRefusedNaming(job, "negative", [](v1::SampleJob& j) { j.clear_negative(); });
  }
  ExpectRefusedNaming(job, "latent", [](v1::SampleJob& j) { j.set_latent("not a latent"); });
}

INSTANTIATE_TEST_SUITE_P(
    Families, ImageFamilyJobsTest,
    ::testing::Values(
        Family{.name = "qwen_image",
               .reference = RAYLIGHT_QWEN_IMAGE_REFERENCE,
               .config = R"({"hidden": 128, "heads": 4, "depth": 4, "context_dim": 48, )"
                         R"("axes_dim": [4, 14, 14]})",
               .latent_shape = {1, 16, 1, 8, 12},
               .checkpoint = "comfyui.safetensors",
               .references = true,
               .vae = "wan2.1"},
        Family{.name = "chroma",
               .reference = RAYLIGHT_CHROMA_REFERENCE,
               .config = R"({"hidden": 64, "heads": 2, "depth": 19, "depth_single": 38, )"
                         R"("context_dim": 48, "axes_dim": [4, 14, 14], )"
                         R"("approximator_hidden": 32, "approximator_layers": 2})",
               .latent_shape = {1, 16, 8, 12},
               .checkpoint = "comfyui.safetensors",
               .comfyui_loras = true,
               .vae = "kl"},
        // FLUX.2: diffusers' network inside ComfyUI's sampling code (its Flux2 conventions).
        Family{.name = "flux2",
               .reference = RAYLIGHT_FLUX2_REFERENCE,
               .config = R"({"hidden": 128, "heads": 4, "depth": 2, "depth_single": 4, )"
                         R"("context_dim": 48, "axes_dim": [8, 8, 8, 8]})",
               .latent_shape = {1, 128, 4, 6},
               .checkpoint = "diffusers.safetensors",
               .cfg = 1.0,
               .tolerance = 2e-4,
               .cfg_parallel = false,
               .vae = "kl",
               .kl_vae_config =
                   R"({"latent": 32, "channels": [32, 32, 32, 32], "layers": 1, )"
                   R"("post_quant": true, "prefix": "", "height": 2, "width": 2, "batch": 1, )"
                   R"("flux2": true})"}),
    PrintFamily);

}  // namespace
}  // namespace raylight::jobs_testing
