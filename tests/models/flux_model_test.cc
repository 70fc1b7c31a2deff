// Our Flux.1 forward against two implementations nobody here wrote: diffusers'
// FluxTransformer2DModel and ComfyUI's Flux (Black Forest Labs' code), each with its own random
// weights in its own spelling (diffusers' split projections; BFL's fused ones under ComfyUI's
// prefix), on the same fresh random inputs. fp32 on the CPU, relative L2 under 1e-4: tiny sizes,
// Flux.1's real head sizes with one block of each kind, odd latent sides (ComfyUI pads them).
#include "models/flux/flux_model.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "models/core/mag_cache.h"
#include "models/core/safetensors_tensors.h"
#include "models/flux/flux_keys.h"
#include "models/flux/flux_loader.h"
#include "tests/models/flux_test_util.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::flux {
namespace {

using testing_util::FluxSize;
using testing_util::RelativeL2;

#ifdef RAYLIGHT_TEST_GPU
constexpr double kTolerance = 1e-2;  // bf16 on the GPU
#else
constexpr double kTolerance = 1e-4;  // fp32 on the CPU
#endif

at::Tensor OurForward(const std::string& checkpoint, const FluxInputs& inputs,
                      const std::string& expected_name) {
  PlacementOptions placement;
#ifdef RAYLIGHT_TEST_GPU
  placement.device = at::Device(at::kCUDA, 0);
  placement.compute_dtype = at::kBFloat16;
#endif
  auto loaded = LoadFlux({checkpoint}, placement);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return {};
  EXPECT_EQ(loaded->config.name, expected_name);
  auto out = FluxForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? out->cpu() : at::Tensor();
}

struct Case {
  std::string preset;
  int64_t depth = 0, depth_single = 0;  // 0: the preset's
  FluxSize size;
  testing_util::FluxReferenceOptions references;
};

void Compare(const Case& c) {
  testing_util::TempDir dir("flux-reference");
  FluxConfig config = *FluxPreset(c.preset);
  if (c.depth > 0) config.depth = c.depth;
  if (c.depth_single > 0) config.depth_single = c.depth_single;
  FluxInputs inputs = testing_util::RandomFluxInputs(config, c.size);
#ifdef RAYLIGHT_TEST_GPU
  // diffusers multiplies the timestep and the guidance by 1000 in bf16, which rounds 750 to 752
  // and 3500 to 3504 and moves every sinusoid of the time embedding (its bf16 forward then differs
  // from its own fp32 one by 0.3 at two blocks); values whose x1000 bf16 holds exactly compare
  // the blocks rather than that rounding (ours and ComfyUI's scale in fp32).
  inputs.t = at::full({c.size.batch}, 0.5);
  if (config.guidance_embed) inputs.guidance = at::full({c.size.batch}, 4.0);
#endif
  auto reference = testing_util::RunFluxReference(dir.path(), config, inputs, c.references);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const auto& [name, file, expected] :
       {std::tuple{"diffusers", reference->diffusers_checkpoint, reference->diffusers},
        std::tuple{"comfyui", reference->comfyui_checkpoint, reference->comfyui}}) {
    if (file.empty()) continue;
    const at::Tensor ours = OurForward(file, inputs, c.preset);
    ASSERT_TRUE(ours.defined());
    ASSERT_EQ(ours.sizes(), expected.sizes()) << name;
    const double error = RelativeL2(ours, expected);
    EXPECT_LT(error, kTolerance) << c.preset << " against " << name;
    std::printf("%s (%ld + %ld blocks) vs %s: relative L2 %.3g\n", c.preset.c_str(),
                static_cast<long>(config.depth), static_cast<long>(config.depth_single), name,
                error);
  }
}

#ifdef RAYLIGHT_TEST_GPU
// Flux.1-dev's widths with two blocks of each kind at 1024x1024 and 512 text tokens, bf16.
TEST(FluxGpuTest, RealWidthsMatchDiffusersInBf16At1024) {
  Compare({"flux1-dev",
           2,
           2,
           {1, 128, 128, 512},
           {.comfyui = false, .device = "cuda", .dtype = "bf16"}});
}
#else
TEST(FluxModelTest, TinyDevMatchesDiffusersAndComfyUI) {
  Compare({"tiny-flux-dev", 0, 0, {2, 8, 12, 7}});
}

TEST(FluxModelTest, TinySchnellMatchesDiffusersAndComfyUIWithoutGuidance) {
  Compare({"tiny-flux-schnell", 0, 0, {1, 6, 10, 5}});
}

TEST(FluxModelTest, OddLatentSidesArePaddedAsComfyUIPadsThem) {
  Compare({"tiny-flux-dev", 0, 0, {1, 7, 9, 4}, {.diffusers = false}});
}

TEST(FluxModelTest, RealHeadSizesMatchDiffusers) {
  // Flux.1-dev's widths (3072, 24 heads of 128, RoPE 16/56/56, T5 4096, CLIP 768) with one block
  // of each kind: detected as flux1-dev with fewer blocks.
  Compare({"flux1-dev", 1, 1, {1, 4, 6, 6}, {.comfyui = false}});
}

// Kontext: two reference latents (one of odd height: padded as ComfyUI pads) join the image's
// tokens at index 1, the second placed below the first as ComfyUI's "offset" placement does.
TEST(FluxModelTest, KontextReferencesJoinTheImageTokensAsComfyUis) {
  testing_util::TempDir dir("flux-kontext");
  const FluxConfig config = *FluxPreset("tiny-flux-dev");
  FluxInputs inputs = testing_util::RandomFluxInputs(config, {1, 8, 12, 6});
  inputs.references = {at::randn({1, 16, 7, 10}), at::randn({1, 16, 8, 5})};
  auto reference = testing_util::RunFluxReference(dir.path(), config, inputs, {.diffusers = false});
  ASSERT_TRUE(reference.ok()) << reference.status();
  const at::Tensor ours = OurForward(reference->comfyui_checkpoint, inputs, "tiny-flux-dev");
  ASSERT_TRUE(ours.defined());
  ASSERT_EQ(ours.sizes(), reference->comfyui.sizes());
  const double error = RelativeL2(ours, reference->comfyui);
  EXPECT_LT(error, kTolerance);
  std::printf("kontext (2 references) vs comfyui: relative L2 %.3g\n", error);
  // The references change the prediction (they are not ignored).
  FluxInputs alone = inputs;
  alone.references.clear();
  EXPECT_GT(RelativeL2(OurForward(reference->comfyui_checkpoint, alone, "tiny-flux-dev"), ours),
            1e-3);
}

// A step cache on the Flux forward (MagCache's schedule): a computed call equals the plain
// forward, a reused call adds the residual the blocks added at the last computed one (the same
// inputs here, so the same output up to the residual's rounding), and past the schedule every
// call computes again.
TEST(FluxModelTest, AStepCacheReusesTheLastComputedResidual) {
  testing_util::TempDir dir("flux-step-cache");
  const FluxConfig config = *FluxPreset("tiny-flux-dev");
  const FluxInputs inputs = testing_util::RandomFluxInputs(config, {});
  auto reference = testing_util::RunFluxReference(dir.path(), config, inputs, {.diffusers = false});
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto loaded = LoadFlux({reference->comfyui_checkpoint}, PlacementOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto plain = FluxForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ResidualCache cache(std::make_unique<ScheduledSkips>(std::vector<bool>{true, false}));
  FluxInputs cached = inputs;
  cached.step_cache = &cache;
  for (int call = 0; call < 3; ++call) {
    auto out = FluxForward(loaded->config, cached, ParallelContext{}, *loaded->weights);
    ASSERT_TRUE(out.ok()) << out.status();
    if (call == 1) {
      EXPECT_LT((*out - *plain).abs().max().item<double>(), 1e-5);
    } else {
      EXPECT_TRUE(at::equal(*out, *plain)) << "call " << call;
    }
  }
  EXPECT_EQ(cache.policy->reused(), 1);
}

// ComfyUI's unscaled fp8 Flux files (flux1-dev-fp8: the blocks' matrices float8_e4m3fn, no
// scales) load as their values, kept fp8 in memory: the forward equals the same values in fp32.
TEST(FluxModelTest, UnscaledFp8WeightsLoadAsComfyUisFp8FilesHoldThem) {
  testing_util::TempDir dir("flux-fp8");
  const FluxConfig config = *FluxPreset("tiny-flux-dev");
  const FluxInputs inputs = testing_util::RandomFluxInputs(config, {});
  auto reference = testing_util::RunFluxReference(dir.path(), config, inputs, {.diffusers = false});
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto tensors = testing_util::ReadTensors(reference->comfyui_checkpoint);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  NamedTensors fp8, values;
  for (const auto& [name, tensor] : *tensors) {
    const bool block_matrix = name.find("_blocks.") != std::string::npos && tensor.dim() == 2;
    const at::Tensor stored = block_matrix ? tensor.to(at::kFloat8_e4m3fn) : tensor;
    fp8.emplace_back(name, stored);
    values.emplace_back(name, stored.to(at::kFloat));
  }
  ASSERT_TRUE(WriteTensors(dir.path() + "/fp8.safetensors", fp8).ok());
  ASSERT_TRUE(WriteTensors(dir.path() + "/values.safetensors", values).ok());
  // The same values; the GEMMs may round differently on the file's mapped fp32 rows than on a
  // fresh copy (as in gguf_test).
  EXPECT_LT(RelativeL2(OurForward(dir.path() + "/fp8.safetensors", inputs, "tiny-flux-dev"),
                       OurForward(dir.path() + "/values.safetensors", inputs, "tiny-flux-dev")),
            1e-6);
}

TEST(FluxModelTest, InputsAreCheckedFieldByField) {
  const FluxConfig config = *FluxPreset("tiny-flux-dev");
  const FluxInputs good = testing_util::RandomFluxInputs(config, {});
  EXPECT_TRUE(ValidateFluxInputs(config, good).ok());
  auto expect_error = [&](FluxInputs in, const std::string& field) {
    const absl::Status status = ValidateFluxInputs(config, in);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(std::string(status.message()).rfind(field + ":", 0), 0u) << status;
  };
  FluxInputs in = good;
  in.guidance = at::Tensor();
  expect_error(in, "guidance");
  in = good;
  in.x = at::randn({1, 4, 8, 12});
  expect_error(in, "x");
  in = good;
  in.context = at::randn({1, 7, config.context_dim + 1});
  expect_error(in, "context");
  in = good;
  in.t = at::full({1}, std::nan(""));
  expect_error(in, "t");
  in = good;
  in.pooled = at::randn({2, config.vec_dim});
  expect_error(in, "pooled");
  in = good;
  in.references = {at::randn({1, 4, 6, 6})};
  expect_error(in, "references");
  // schnell has no guidance embedding: none needed.
  const FluxConfig schnell = *FluxPreset("tiny-flux-schnell");
  in = testing_util::RandomFluxInputs(schnell, {});
  EXPECT_TRUE(ValidateFluxInputs(schnell, in).ok());
}

TEST(FluxModelTest, CheckpointErrorsNameTheKeys) {
  testing_util::TempDir dir("flux-keys");
  const FluxConfig config = *FluxPreset("tiny-flux-dev");
  const FluxInputs inputs = testing_util::RandomFluxInputs(config, {});
  auto reference = testing_util::RunFluxReference(dir.path(), config, inputs, {.diffusers = false});
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto tensors = testing_util::ReadTensors(reference->comfyui_checkpoint);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  NamedTensors kept;
  for (const auto& [name, tensor] : *tensors) {
    if (name != "model.diffusion_model.single_blocks.1.linear2.bias")
      kept.emplace_back(name, tensor);
  }
  kept.emplace_back("model.diffusion_model.double_blocks.0.img_attn.extra.weight", at::ones({2}));
  const std::string broken = dir.path() + "/broken.safetensors";
  ASSERT_TRUE(WriteTensors(broken, kept).ok());
  auto opened = OpenFluxCheckpoint({broken});
  ASSERT_FALSE(opened.ok());
  const std::string message(opened.status().message());
  EXPECT_NE(message.find("missing keys: single_blocks.1.linear2.bias"), std::string::npos)
      << message;
  EXPECT_NE(message.find("extra keys: double_blocks.0.img_attn.extra.weight"), std::string::npos)
      << message;
  // The header-only inspection (the head's) says the same.
  auto inspected = InspectFluxCheckpoint({broken});
  ASSERT_FALSE(inspected.ok());
  EXPECT_EQ(inspected.status().message(), opened.status().message());
}

TEST(FluxModelTest, PresetsCountFluxOnesTwelveBillionParameters) {
  const FluxConfig dev = *FluxPreset("flux1-dev");
  EXPECT_TRUE(dev.Validate().ok());
  // Flux.1-dev: 11.9 billion parameters (BFL's model card says 12B).
  EXPECT_NEAR(static_cast<double>(dev.ParameterCount()) / 1e9, 11.9, 0.05);
  EXPECT_EQ(dev.num_blocks(), 57);
  EXPECT_FALSE(FluxPreset("flux1-schnell")->guidance_embed);
  EXPECT_FALSE(FluxPreset("flux9").ok());
}

#endif  // RAYLIGHT_TEST_GPU

}  // namespace
}  // namespace raylight::models::flux
