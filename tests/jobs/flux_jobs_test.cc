// Flux.1 jobs through the cluster (issue #26) against ComfyUI's own sampling: a tiny random Flux
// checkpoint in ComfyUI's spelling in the model root, random conditioning files (T5 tokens, the
// pooled vector, the guidance), and the same job run by ComfyUI 0.3.64's comfy.sample.sample
// with its Flux model, ModelSamplingFlux and latent format (tests/models/flux_reference.py
// --sample). fp32 on CPU workers: max abs difference under 1e-4, one rank and Ulysses 2 (the
// joint text + image sequence split across the ranks), Kontext references and LoRAs in both
// spellings.
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "tests/jobs/jobs_fixture.h"

namespace raylight::jobs_testing {
namespace {

constexpr char kTinyFluxDev[] =
    R"({"hidden": 128, "heads": 4, "depth": 2, "depth_single": 2, "context_dim": 48, )"
    R"("vec_dim": 24, "guidance_embed": true, "axes_dim": [4, 14, 14]})";

class FluxJobsTest : public JobsTest {
 protected:
  void SetUp() override {
    JobsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::string reference = RAYLIGHT_FLUX_REFERENCE;
    const absl::Status made = RunTools(
        {{RAYLIGHT_TEST_PYTHON, reference, "--config", kTinyFluxDev, "--seed", absl::StrCat(seed_),
          "--out-dir", dir_->path(), "--skip-diffusers", "--comfyui-tarball",
          RAYLIGHT_COMFYUI_TARBALL, "--workdir", dir_->path() + "/comfyui"},
         {RAYLIGHT_TEST_PYTHON, reference, "--conditioning",
          dir_->path() + "/flux-positive.safetensors", "--config", kTinyFluxDev, "--seed",
          absl::StrCat(seed_ + 1), "--tokens", "7", "--guidance", "3.0"},
         {RAYLIGHT_TEST_PYTHON, reference, "--conditioning",
          dir_->path() + "/flux-negative.safetensors", "--config", kTinyFluxDev, "--seed",
          absl::StrCat(seed_ + 2), "--tokens", "7"}},
        "flux.log", std::chrono::seconds(300));
    ASSERT_TRUE(made.ok()) << made;
    fs::rename(dir_->path() + "/comfyui.safetensors", models_ + "/flux-tiny.safetensors");
  }

  // 96 x 64 pixels: a 8 x 12 latent, 24 image tokens beside 7 text tokens (31: Ulysses 2 pads).
  v1::SampleJob FluxJob() const {
    v1::SampleJob job;
    job.set_model("flux-tiny.safetensors");
    job.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/flux-positive.safetensors"));
    job.set_negative(testing_util::ReadFileOrEmpty(dir_->path() + "/flux-negative.safetensors"));
    job.set_width(96);
    job.set_height(64);
    job.set_steps(4);
    job.set_cfg(2.0);
    job.set_sampler("euler");
    job.set_scheduler("simple");
    job.set_seed(5);
    return job;
  }

  // ComfyUI's LATENT for the same job, on the checkpoint in BFL's names (whatever spelling the
  // job's copy has), with `loras` (a JSON list of {"path", "strength"}) applied.
  // A job with `cache` easycache gets ComfyUI's EasyCache node on the model (with later
  // ComfyUI's per-branch arithmetic: dit_reference.py with_easycache); teacache, TeaCache4FLUX's
  // rule (with_flux_teacache, its counts beside the LATENT in `out`.json).
  Latent ComfyReference(const v1::SampleJob& job,
                        const std::string& positive = "flux-positive.safetensors",
                        const std::string& loras = "[]") {
    const std::string out = dir_->path() + "/comfyui-sampled.safetensors";
    const v1::StepCache& cache = job.cache();
    const std::string easycache =
        cache.kind() == "easycache"
            ? absl::StrCat(R"("easycache": {"threshold": )", cache.threshold(), R"(, "start": )",
                           cache.has_start_percent() ? cache.start_percent() : 0.15, R"(, "end": )",
                           cache.has_end_percent() ? cache.end_percent() : 0.95, "}, ")
            : "";
    std::string teacache;
    if (cache.kind() == "teacache") {
      teacache =
          absl::StrCat(R"("teacache": {"threshold": )", cache.threshold(), R"(, "coefficients": [)",
                       absl::StrJoin(cache.coefficients(), ", "), "]}, ");
    }
    const std::string c =
        absl::StrCat("{", easycache, teacache, R"("loras": )", loras, R"(, "config": )",
                     kTinyFluxDev, R"(, "checkpoint": ")", models_, "/flux-tiny.safetensors",
                     R"(", "positive": ")", dir_->path(), "/", positive, R"(", "negative": ")",
                     dir_->path(), R"(/flux-negative.safetensors", "width": )", job.width(),
                     R"(, "height": )", job.height(), R"(, "steps": )", job.steps(), R"(, "cfg": )",
                     job.cfg(), R"(, "sampler": ")", job.sampler(), R"(", "scheduler": ")",
                     job.scheduler(), R"(", "seed": )", job.seed(), R"(, "out": ")", out, R"("})");
    const absl::Status ran = RunTools(
        {{RAYLIGHT_TEST_PYTHON, RAYLIGHT_FLUX_REFERENCE, "--sample", c, "--comfyui-tarball",
          RAYLIGHT_COMFYUI_TARBALL, "--workdir", dir_->path() + "/comfyui"}},
        "comfyui-sample.log", std::chrono::seconds(300));
    EXPECT_TRUE(ran.ok()) << ran;
    return ReadLatent(testing_util::ReadFileOrEmpty(out));
  }

  // A JSON list of one LoRA file of the model root at `strength`, as ComfyReference takes it.
  std::string LoraList(const std::string& name, double strength) const {
    return absl::StrCat(R"([{"path": ")", models_, "/", name, R"(", "strength": )", strength, "}]");
  }

  // `job` resident on one rank, then under Ulysses 2 with FSDP-placed weights (each rank merging
  // its shard's rows), each against `want` (max abs difference 1e-4).
  void ExpectResidentAndShardedEqual(v1::SampleJob job, const Latent& want,
                                     const std::string& what) {
    for (const bool sharded : {false, true}) {
      if (sharded) {
        job.mutable_mesh()->set_ulysses(2);
        job.set_placement("fsdp");
      }
      v1::JobInfo done = RunJob(job);
      ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
      const Latent got = ReadLatent(ResultOf(done.job_id()).latent());
      ASSERT_EQ(got.shape, want.shape);
      EXPECT_LT(MaxAbsDiff(got, want), 1e-4) << what << (sharded ? " fsdp" : "");
      std::printf("flux %s%s vs ComfyUI: max abs diff %.3g\n", what.c_str(),
                  sharded ? " (ulysses 2, fsdp)" : "", MaxAbsDiff(got, want));
    }
  }
};

TEST_F(FluxJobsTest, AJobOnOneRankEqualsComfyUisSampling) {
  const v1::SampleJob job = FluxJob();
  v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent got = ReadLatent(ResultOf(done.job_id()).latent());
  EXPECT_EQ(got.shape, (std::vector<int64_t>{1, 16, 8, 12}));
  const Latent want = ComfyReference(job);
  ASSERT_EQ(got.shape, want.shape);
  EXPECT_LT(MaxAbsDiff(got, want), 1e-4);
  std::printf("flux job vs ComfyUI: max abs diff %.3g\n", MaxAbsDiff(got, want));
}

TEST_F(FluxJobsTest, AUlyssesJobSplitsTheJointSequenceAndEqualsComfyUi) {
  v1::SampleJob job = FluxJob();
  job.mutable_mesh()->set_ulysses(2);
  job.set_sampler("dpmpp_2m");
  job.set_preview_every(2);
  v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const v1::SampleResult result = ResultOf(done.job_id());
  EXPECT_EQ(result.preview_png().substr(1, 3), "PNG");
  const Latent got = ReadLatent(result.latent());
  const Latent want = ComfyReference(job);
  ASSERT_EQ(got.shape, want.shape);
  EXPECT_LT(MaxAbsDiff(got, want), 1e-4);
}

// Flux Kontext: the positive conditioning carries a reference image's LATENT (as ComfyUI's
// ReferenceLatent node attaches it); its tokens join the image's, and the job equals ComfyUI's.
TEST_F(FluxJobsTest, AKontextJobWithAReferenceLatentEqualsComfyUis) {
  const std::string kontext = dir_->path() + "/flux-kontext.safetensors";
  ASSERT_TRUE(RunTools({{RAYLIGHT_TEST_PYTHON, RAYLIGHT_FLUX_REFERENCE, "--conditioning", kontext,
                         "--config", kTinyFluxDev, "--seed", absl::StrCat(seed_ + 3), "--tokens",
                         "7", "--guidance", "2.5", "--references", "6x10"}},
                       "flux.log", std::chrono::seconds(120))
                  .ok());
  v1::SampleJob job = FluxJob();
  job.set_positive(testing_util::ReadFileOrEmpty(kontext));
  job.mutable_mesh()->set_ulysses(2);
  v1::JobInfo done = RunJob(job);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent got = ReadLatent(ResultOf(done.job_id()).latent());
  const Latent want = ComfyReference(job, "flux-kontext.safetensors");
  ASSERT_EQ(got.shape, want.shape);
  EXPECT_LT(MaxAbsDiff(got, want), 1e-4);
}

// LoRAs on Flux's fused projections against ComfyUI applying them to its own BFL-named weights
// (comfy/lora.py with comfy/utils.py flux_to_diffusers' row offsets): a diffusers / PEFT LoRA
// (to_q, add_v_proj, proj_mlp, norm_out...: rows of BFL's fused qkv and linear1, and the final
// modulation in the other row order) on the BFL checkpoint; a kohya LoRA of BFL's fused names on
// the same weights in diffusers' spelling (written by ComfyUI's own map), where each part takes
// its rows of the update. One rank, and Ulysses 2 with FSDP-placed weights (each rank merges its
// shard's rows).
TEST_F(FluxJobsTest, LorasOnFusedAndSplitProjectionsEqualComfyUisSampling) {
  const std::string diffusers_copy = "flux-tiny-diffusers.safetensors";
  ASSERT_TRUE(
      RunTools({{RAYLIGHT_TEST_PYTHON, RAYLIGHT_FLUX_LORA_REFERENCE, "--base",
                 models_ + "/flux-tiny.safetensors", "--lora", models_ + "/peft.safetensors",
                 "--form", "diffusers", "--seed", absl::StrCat(seed_ + 5), "--diffusers-copy",
                 models_ + "/" + diffusers_copy, "--comfyui-tarball", RAYLIGHT_COMFYUI_TARBALL,
                 "--workdir", dir_->path() + "/comfyui"},
                {RAYLIGHT_TEST_PYTHON, RAYLIGHT_FLUX_LORA_REFERENCE, "--base",
                 models_ + "/flux-tiny.safetensors", "--lora", models_ + "/kohya.safetensors",
                 "--form", "kohya", "--seed", absl::StrCat(seed_ + 6)}},
               "flux-lora.log", std::chrono::seconds(300))
          .ok());
  v1::JobInfo base = RunJob(FluxJob());
  ASSERT_EQ(base.state(), v1::JOB_SUCCEEDED) << base.DebugString();
  const Latent without = ReadLatent(ResultOf(base.job_id()).latent());
  for (const auto& [model, lora] :
       {std::pair<std::string, std::string>{"flux-tiny.safetensors", "peft.safetensors"},
        {diffusers_copy, "kohya.safetensors"}}) {
    v1::SampleJob job = FluxJob();
    job.set_model(model);
    v1::LoraRef* ref = job.add_loras();
    ref->set_name(lora);
    ref->set_strength(0.8);
    const Latent want = ComfyReference(job, "flux-positive.safetensors", LoraList(lora, 0.8));
    // The LoRA changes the result (the equality below is not a no-op's).
    EXPECT_GT(MaxAbsDiff(without, want), 1e-2) << lora;
    ExpectResidentAndShardedEqual(job, want, model + " + " + lora);
  }
}

// ComfyUI-GGUF's Flux files (city96's layout, BFL's names; tests/models/gguf_reference.py: a
// quantisation type per matrix in turn) alone and with a diffusers LoRA on their blocks' fused
// projections: the job keeps the blocks quantised and patches each dequantised block's rows,
// resident and under Ulysses 2 with FSDP, and equals ComfyUI's sampling of the values gguf-py
// dequantises from the file with the same LoRA. (Not the weights outside the blocks here: the
// tiny model's text input is 48 wide, so the file keeps it F16, and a LoRA'd F16 weight goes
// back to F16 as ComfyUI stores it, which the float32 reference file does not.)
TEST_F(FluxJobsTest, AGgufModelWithALoraOnItsFusedProjectionsEqualsComfyUis) {
  ASSERT_TRUE(
      RunTools({{RAYLIGHT_TEST_PYTHON, RAYLIGHT_GGUF_REFERENCE, "convert",
                 models_ + "/flux-tiny.safetensors", models_ + "/flux-tiny.gguf",
                 dir_->path() + "/flux-dequantised.safetensors", absl::StrCat(seed_ + 8)},
                {RAYLIGHT_TEST_PYTHON, RAYLIGHT_FLUX_LORA_REFERENCE, "--base",
                 models_ + "/flux-tiny.safetensors", "--lora", models_ + "/peft.safetensors",
                 "--form", "diffusers", "--seed", absl::StrCat(seed_ + 9), "--blocks-only"}},
               "flux-gguf.log", std::chrono::seconds(300))
          .ok());
  // ComfyUI reads the dequantised values under its own checkpoint's name.
  fs::rename(models_ + "/flux-tiny.safetensors", dir_->path() + "/flux-tiny-original.safetensors");
  fs::rename(dir_->path() + "/flux-dequantised.safetensors", models_ + "/flux-tiny.safetensors");
  v1::SampleJob job = FluxJob();
  job.set_model("flux-tiny.gguf");
  {
    v1::JobInfo done = RunJob(job);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    EXPECT_LT(MaxAbsDiff(ReadLatent(ResultOf(done.job_id()).latent()), ComfyReference(job)), 1e-4);
  }
  v1::LoraRef* lora = job.add_loras();
  lora->set_name("peft.safetensors");
  lora->set_strength(0.8);
  const Latent want =
      ComfyReference(job, "flux-positive.safetensors", LoraList("peft.safetensors", 0.8));
  ExpectResidentAndShardedEqual(job, want, "gguf + lora");
}

// EasyCache on a Flux job with CFG (both branches: ComfyUI measures the unconditional one, the
// first of its batch) equals ComfyUI's EasyCache node on its own Flux, on one rank and under
// Ulysses 2, and reuses steps.
TEST_F(FluxJobsTest, AnEasyCacheJobEqualsComfyUisEasyCacheNode) {
  v1::SampleJob job = FluxJob();
  job.set_steps(10);
  job.mutable_cache()->set_kind("easycache");
  job.mutable_cache()->set_threshold(1.0);  // random weights change fast: reuses some steps
  job.mutable_cache()->set_start_percent(0.1);
  const Latent want = ComfyReference(job);
  Latent one_rank;
  for (const int ulysses : {1, 2}) {
    v1::SampleJob meshed = job;
    meshed.mutable_mesh()->set_ulysses(ulysses);
    v1::JobInfo done = RunJob(meshed);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const v1::SampleResult result = ResultOf(done.job_id());
    const Latent got = ReadLatent(result.latent());
    ASSERT_EQ(got.shape, want.shape);
    // Against ComfyUI, another implementation, by relative L2: the reused differences carry the
    // last computed step's rounding into later steps (3e-6 to 5e-6 measured, the largest values
    // near 1e-4 apart), while one step decided otherwise moves the latent by more than 1e-2 (the
    // reuse's own effect, below); the mesh against one rank, max abs 1e-4.
    const double error = testing_util::RelativeL2(got, want);
    EXPECT_LT(error, 5e-5) << "ulysses " << ulysses;
    if (ulysses == 1) {
      one_rank = got;
    } else {
      EXPECT_LT(MaxAbsDiff(got, one_rank), 1e-4);
    }
    EXPECT_GT(result.calls_reused(), 0);
    std::printf(
        "flux easycache (ulysses %d) vs ComfyUI: %d of %d calls reused, relative L2 %.3g, max abs "
        "diff %.3g\n",
        ulysses, result.calls_reused(), result.model_calls(), error, MaxAbsDiff(got, want));
  }
  v1::SampleJob uncached = job;
  uncached.clear_cache();
  EXPECT_GT(testing_util::RelativeL2(ComfyReference(uncached), want), 1e-2);  // the reuse is real
}

// TeaCache on a Flux job with CFG (TeaCache4FLUX's measure and rule; the job's own coefficients,
// random weights having no calibration) equals the authors' rule on ComfyUI's own Flux
// (dit_reference.py with_flux_teacache, which measures cond and uncond of a call together as
// ComfyUI batches them) and reuses the same calls: on one rank, under Ulysses 2 with FSDP (the
// measure summed over the ranks' rows while FSDP gathers the block it reads) and under Ring 2.
TEST_F(FluxJobsTest, ATeaCacheJobEqualsTheAuthorsRuleOnComfyUisFlux) {
  v1::SampleJob job = FluxJob();
  job.set_steps(10);
  v1::StepCache* cache = job.mutable_cache();
  cache->set_kind("teacache");
  cache->set_threshold(0.5);  // on the relative L1 change itself: reuses some calls here
  cache->add_coefficients(1.0);
  cache->add_coefficients(0.0);
  const Latent want = ComfyReference(job);
  const nlohmann::json counts = nlohmann::json::parse(
      testing_util::ReadFileOrEmpty(dir_->path() + "/comfyui-sampled.safetensors.json"));
  const int reference_reused = counts["reused"];
  EXPECT_GT(reference_reused, 0);
  EXPECT_LT(reference_reused, 8);  // the first and the last call compute
  Latent one_rank;
  for (const std::string mesh : {"one rank", "ulysses 2, fsdp", "ring 2"}) {
    v1::SampleJob meshed = job;
    if (mesh == "ulysses 2, fsdp") {
      meshed.mutable_mesh()->set_ulysses(2);
      meshed.set_placement("fsdp");
    } else if (mesh == "ring 2") {
      meshed.mutable_mesh()->set_ring(2);
    }
    v1::JobInfo done = RunJob(meshed);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const v1::SampleResult result = ResultOf(done.job_id());
    const Latent got = ReadLatent(result.latent());
    ASSERT_EQ(got.shape, want.shape);
    // Against ComfyUI by relative L2, as for EasyCache: the reused residual carries the last
    // computed call's rounding on; one call decided otherwise moves the latent by more than 1e-2.
    const double error = testing_util::RelativeL2(got, want);
    EXPECT_LT(error, 5e-5) << mesh;
    EXPECT_EQ(result.calls_reused(), reference_reused) << mesh;
    if (mesh == "one rank") {
      one_rank = got;
    } else {
      EXPECT_LT(MaxAbsDiff(got, one_rank), 1e-4) << mesh;
    }
    std::printf(
        "flux teacache (%s) vs ComfyUI + TeaCache4FLUX's rule: %d of %d calls reused (reference "
        "%d), relative L2 %.3g, max abs diff %.3g\n",
        mesh.c_str(), result.calls_reused(), result.model_calls(), reference_reused, error,
        MaxAbsDiff(got, want));
  }
  v1::SampleJob uncached = job;
  uncached.clear_cache();
  EXPECT_GT(testing_util::RelativeL2(ComfyReference(uncached), want), 1e-2);  // the reuse is real
}

// fp8 compute on the Flux forward (fused linear1's rows, linear2's two column parts): the job
// stays within fp8_linear.h's documented 10% of the default job, on one rank and under Ulysses 2
// (where the attention's other summation order moves an activation's e4m3 rounding now and
// then, so the two are compared by relative L2 too), and the fp8 copy is a model of its own.
TEST_F(FluxJobsTest, AnFp8ComputeJobStaysNearTheDefaultJob) {
  const v1::SampleJob plain = FluxJob();
  v1::JobInfo done = RunJob(plain);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
  const Latent full = ReadLatent(ResultOf(done.job_id()).latent());
  v1::SampleJob job = plain;
  job.set_compute("fp8");
  Latent one_rank;
  for (const int ulysses : {1, 2}) {
    v1::SampleJob meshed = job;
    meshed.mutable_mesh()->set_ulysses(ulysses);
    done = RunJob(meshed);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.DebugString();
    const v1::SampleResult result = ResultOf(done.job_id());
    if (ulysses == 1) {
      EXPECT_FALSE(result.model_was_resident());  // not the default copy
    }
    const Latent got = ReadLatent(result.latent());
    const double error = testing_util::RelativeL2(got, full);
    std::printf("flux fp8 compute (ulysses %d) vs the default job: relative L2 %.3g\n", ulysses,
                error);
    EXPECT_LT(error, 0.10);
    EXPECT_GT(error, 1e-4);  // it really ran in fp8
    if (ulysses == 1) {
      one_rank = got;
    } else {
      EXPECT_LT(testing_util::RelativeL2(got, one_rank), 0.10);
    }
  }
}

TEST_F(FluxJobsTest, WhatFluxJobsCannotHaveIsRefusedNamingTheField) {
  const v1::SampleJob job = FluxJob();
  ExpectRefusedNaming(job, "mesh.cfg", [](v1::SampleJob& j) { j.mutable_mesh()->set_cfg(2); });
  ExpectRefusedNaming(job, "prompt", [](v1::SampleJob& j) {
    j.clear_positive();
    j.set_prompt("a red fox");
  });
  ExpectRefusedNaming(job, "frames", [](v1::SampleJob& j) { j.set_frames(9); });
  ExpectRefusedNaming(job, "width", [](v1::SampleJob& j) { j.set_width(100); });
  ExpectRefusedNaming(job, "output", [](v1::SampleJob& j) { j.set_output("gif"); });
  // An image output needs the image VAE, and the root has none.
  ExpectRefusedNaming(job, "vae", [](v1::SampleJob& j) { j.set_output("video"); });
  // TeaCache: nobody calibrated this model; Wan's retention steps; per-sample decisions over FSDP.
  ExpectRefusedNaming(job, "cache.coefficients",
                      [](v1::SampleJob& j) { j.mutable_cache()->set_kind("teacache"); });
  auto own_teacache = [](v1::SampleJob& j) {
    j.mutable_cache()->set_kind("teacache");
    j.mutable_cache()->set_threshold(0.5);
    j.mutable_cache()->add_coefficients(1.0);
    j.mutable_cache()->add_coefficients(0.0);
  };
  ExpectRefusedNaming(job, "cache.threshold", [&](v1::SampleJob& j) {
    own_teacache(j);
    j.mutable_cache()->set_threshold(0);
  });
  ExpectRefusedNaming(job, "cache.retention_steps", [&](v1::SampleJob& j) {
    own_teacache(j);
    j.mutable_cache()->set_retention_steps(true);
  });
  ExpectRefusedNaming(job, "cache.kind", [&](v1::SampleJob& j) {
    own_teacache(j);
    j.mutable_mesh()->set_dp(2);
    j.set_placement("fsdp");
  });
  ExpectRefusedNaming(job, "cache.kind", [&](v1::SampleJob& j) {  // two model calls a step
    own_teacache(j);
    j.set_sampler("heun");
  });
  ExpectRefusedNaming(job, "cache.kind", [](v1::SampleJob& j) {
    j.mutable_cache()->set_kind("easycache");
    j.mutable_mesh()->set_dp(2);
    j.set_placement("fsdp");
  });
  // A Wan conditioning file (a 48-wide text only... of the wrong width here) is not Flux's.
  ExpectRefusedNaming(job, "positive", [&](v1::SampleJob& j) {
    j.set_positive(testing_util::ReadFileOrEmpty(dir_->path() + "/positive.safetensors") + "x");
  });
  ExpectRefusedNaming(job, "negative", [](v1::SampleJob& j) { j.clear_negative(); });
}

}  // namespace
}  // namespace raylight::jobs_testing
