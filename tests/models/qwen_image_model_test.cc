// Our Qwen-Image forward (the Flux forward from Qwen-Image's names) against diffusers'
// QwenImageTransformer2DModel and ComfyUI's own, each with its own random weights, on fresh random
// inputs. fp32 on the CPU, relative L2 under 1e-4: the tiny size, Qwen-Image's real head sizes
// with two blocks, odd patch counts against ComfyUI. (For an odd count of patch rows or columns
// diffusers centres the image's RoPE positions one lower than ComfyUI does, which moves the text
// against the image: the two references differ there, and we follow ComfyUI.)
#include <gtest/gtest.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/safetensors_tensors.h"
#include "models/family/model_info.h"
#include "models/flux/flux_model.h"
#include "models/qwen_image/qwen_image_family.h"
#include "models/qwen_image/qwen_image_keys.h"
#include "tests/models/reference_forward.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::qwen_image {
namespace {

using flux::FluxConfig;
using flux::FluxInputs;
using testing_util::RelativeL2;

#ifdef RAYLIGHT_TEST_GPU
constexpr double kTolerance = 1e-2;  // bf16 on the GPU
const std::string kDevice = "cuda", kDtype = "bf16";
#else
constexpr double kTolerance = 1e-4;  // fp32 on the CPU
const std::string kDevice = "cpu", kDtype = "f32";
#endif

std::string ConfigJson(const FluxConfig& c) {
  return absl::StrCat("{\"hidden\": ", c.hidden, ", \"heads\": ", c.num_heads,
                      ", \"depth\": ", c.depth, ", \"context_dim\": ", c.context_dim,
                      ", \"axes_dim\": [", absl::StrJoin(c.axes_dim, ", "), "]}");
}

NamedTensors ReferenceInputs(const FluxInputs& inputs) {
  NamedTensors tensors = {{"x", inputs.x}, {"t", inputs.t}, {"context", inputs.context}};
  for (size_t i = 0; i < inputs.references.size(); ++i) {
    tensors.emplace_back(absl::StrCat("ref_", i), inputs.references[i]);
  }
  return tensors;
}

absl::StatusOr<testing_util::ReferenceForward> RunReference(const std::string& dir,
                                                            const FluxConfig& config,
                                                            const FluxInputs& inputs,
                                                            bool diffusers, bool comfyui) {
  return testing_util::RunReferenceForward(
      RAYLIGHT_QWEN_IMAGE_REFERENCE, ConfigJson(config), ReferenceInputs(inputs), dir,
      RAYLIGHT_COMFYUI_WORKDIR,
      {.diffusers = diffusers, .comfyui = comfyui, .device = kDevice, .dtype = kDtype});
}

FluxInputs RandomInputs(const FluxConfig& config, int64_t batch, int64_t height, int64_t width,
                        int64_t tokens) {
  FluxInputs in;
  in.x = at::randn({batch, config.latent_channels, height, width});
  in.t = at::rand({batch}) * 0.9 + 0.05;
  in.context = at::randn({batch, tokens, config.context_dim});
#ifdef RAYLIGHT_TEST_GPU
  // diffusers casts the timestep to bf16 before its x1000: one it holds exactly.
  in.t = at::full({batch}, 0.5);
#endif
  return in;
}

at::Tensor OurForward(const std::string& checkpoint, const FluxInputs& inputs,
                      const std::string& expected_name) {
  PlacementOptions placement;
#ifdef RAYLIGHT_TEST_GPU
  placement.device = at::Device(at::kCUDA, 0);
  placement.compute_dtype = at::kBFloat16;
#endif
  auto loaded = LoadQwenImage({checkpoint}, placement);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return {};
  EXPECT_EQ(loaded->config.name, expected_name);
  auto out = flux::FluxForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? out->cpu().unsqueeze(2) : at::Tensor();
}

struct Case {
  std::string preset;
  int64_t depth = 0;  // 0: the preset's
  int64_t batch = 1, height = 8, width = 12, tokens = 7;
  bool diffusers = true, comfyui = true;
};

void Compare(const Case& c) {
  testing_util::TempDir dir("qwen-image-reference");
  FluxConfig config = *QwenImagePreset(c.preset);
  if (c.depth > 0) config.depth = c.depth;
  const FluxInputs inputs = RandomInputs(config, c.batch, c.height, c.width, c.tokens);
  auto reference = RunReference(dir.path(), config, inputs, c.diffusers, c.comfyui);
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
    std::printf("%s (%ld blocks, %ldx%ld latent) vs %s: relative L2 %.3g\n", c.preset.c_str(),
                static_cast<long>(config.depth), static_cast<long>(c.height),
                static_cast<long>(c.width), name, error);
  }
}

#ifdef RAYLIGHT_TEST_GPU
// Qwen-Image's widths with two blocks at 1024x1024 and 256 text tokens, bf16.
TEST(QwenImageGpuTest, RealWidthsMatchDiffusersInBf16At1024) {
  Compare({.preset = "qwen-image",
           .depth = 2,
           .height = 128,
           .width = 128,
           .tokens = 256,
           .comfyui = false});
}
#else
TEST(QwenImageModelTest, TinyMatchesDiffusersAndComfyUI) {
  Compare({.preset = "tiny-qwen-image", .batch = 2});
}

TEST(QwenImageModelTest, OddPatchCountsAndPaddedSidesMatchComfyUI) {
  // 10 x 14: 5 x 7 patches (odd: ComfyUI's centring); 7 x 9: padded to 8 x 10 as ComfyUI pads.
  Compare({.preset = "tiny-qwen-image", .height = 10, .width = 14, .diffusers = false});
  Compare({.preset = "tiny-qwen-image", .height = 7, .width = 9, .diffusers = false});
}

TEST(QwenImageModelTest, RealHeadSizesMatchDiffusers) {
  // Qwen-Image's widths (3072, 24 heads of 128, RoPE 16/56/56, text 3584) with two blocks:
  // detected as qwen-image with fewer blocks.
  // 2 x 4 patches: even counts, where diffusers centres the image as ComfyUI does.
  Compare(
      {.preset = "qwen-image", .depth = 2, .height = 4, .width = 8, .tokens = 5, .comfyui = false});
}

// Qwen-Image-Edit: two reference latents (one of odd sides, padded as ComfyUI pads) join the
// image's tokens at indices 1 and 2, each centred on its own, as ComfyUI's "index" method places
// them.
TEST(QwenImageModelTest, EditReferencesJoinTheImageTokensAsComfyUisIndexMethod) {
  testing_util::TempDir dir("qwen-image-edit");
  const FluxConfig config = *QwenImagePreset("tiny-qwen-image");
  FluxInputs inputs = RandomInputs(config, 1, 8, 12, 6);
  inputs.references = {at::randn({1, 16, 7, 9}), at::randn({1, 16, 8, 6})};
  auto reference = RunReference(dir.path(), config, inputs, false, true);
  ASSERT_TRUE(reference.ok()) << reference.status();
  const at::Tensor ours = OurForward(reference->comfyui_checkpoint, inputs, "tiny-qwen-image");
  ASSERT_TRUE(ours.defined());
  ASSERT_EQ(ours.sizes(), reference->comfyui.sizes());
  const double error = RelativeL2(ours, reference->comfyui);
  EXPECT_LT(error, kTolerance);
  std::printf("qwen-image-edit (2 references) vs comfyui: relative L2 %.3g\n", error);
  FluxInputs alone = inputs;
  alone.references.clear();
  EXPECT_GT(RelativeL2(OurForward(reference->comfyui_checkpoint, alone, "tiny-qwen-image"), ours),
            1e-3);
}

TEST(QwenImageModelTest, IsItsOwnFamilyAndNotFlux) {
  testing_util::TempDir dir("qwen-image-family");
  const FluxConfig config = *QwenImagePreset("tiny-qwen-image");
  auto reference = RunReference(dir.path(), config, RandomInputs(config, 1, 4, 4, 3), true, false);
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto info = InspectModel({reference->diffusers_checkpoint});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->family, "qwen_image");
  EXPECT_EQ(info->variant, "tiny-qwen-image");
  EXPECT_EQ(info->max_frames, 1);
  EXPECT_EQ(info->sampling, SamplingKind::kFluxShift);
  // A block's weight gone and a stray one added: both named.
  auto tensors = testing_util::ReadTensors(reference->diffusers_checkpoint);
  ASSERT_TRUE(tensors.ok());
  NamedTensors kept;
  for (const auto& [name, tensor] : *tensors) {
    if (name != "transformer_blocks.1.txt_mlp.net.2.bias") kept.emplace_back(name, tensor);
  }
  kept.emplace_back("transformer_blocks.0.img_mod.1.extra", at::ones({2}));
  const std::string broken = dir.path() + "/broken.safetensors";
  ASSERT_TRUE(WriteTensors(broken, kept).ok());
  auto inspected = InspectModel({broken});
  ASSERT_FALSE(inspected.ok());
  const std::string message(inspected.status().message());
  EXPECT_NE(message.find("missing keys: double_blocks.1.txt_mlp.2.bias"), std::string::npos)
      << message;
  EXPECT_NE(message.find("extra keys: double_blocks.0.img_mod.lin.extra"), std::string::npos)
      << message;
}

TEST(QwenImageModelTest, PresetCountsTwentyBillionParameters) {
  const FluxConfig full = *QwenImagePreset("qwen-image");
  EXPECT_TRUE(full.Validate().ok());
  // Qwen-Image: 20.4 billion parameters (its model card says 20B).
  EXPECT_NEAR(static_cast<double>(full.ParameterCount()) / 1e9, 20.4, 0.1);
  EXPECT_EQ(full.num_blocks(), 60);
}
#endif  // RAYLIGHT_TEST_GPU

}  // namespace
}  // namespace raylight::models::qwen_image
