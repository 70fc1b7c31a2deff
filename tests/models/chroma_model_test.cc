// Our Chroma forward (the Flux forward with Chroma's approximator table for modulation) against
// diffusers' ChromaTransformer2DModel and ComfyUI's Chroma, each with its own random weights in
// its own spelling, on fresh random inputs. fp32 on the CPU, relative L2 under 1e-4. The tiny
// size keeps Chroma's 19 double and 38 single blocks: ComfyUI reads the final modulation from row
// 343 of its 344 whatever the blocks, diffusers from the last of as many rows as the blocks need,
// and the two agree only when the blocks use all 344. Real widths with fewer blocks against
// ComfyUI.
#include <gtest/gtest.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/chroma/chroma_family.h"
#include "models/chroma/chroma_keys.h"
#include "models/core/safetensors_tensors.h"
#include "models/family/model_info.h"
#include "models/flux/flux_model.h"
#include "tests/models/reference_forward.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::chroma {
namespace {

using flux::FluxConfig;
using flux::FluxInputs;
using testing_util::RelativeL2;

constexpr double kTolerance = 1e-4;

std::string ConfigJson(const FluxConfig& c) {
  return absl::StrCat("{\"hidden\": ", c.hidden, ", \"heads\": ", c.num_heads,
                      ", \"depth\": ", c.depth, ", \"depth_single\": ", c.depth_single,
                      ", \"context_dim\": ", c.context_dim, ", \"axes_dim\": [",
                      absl::StrJoin(c.axes_dim, ", "),
                      "], \"approximator_hidden\": ", c.approximator_hidden,
                      ", \"approximator_layers\": ", c.approximator_layers, "}");
}

FluxInputs RandomInputs(const FluxConfig& config, int64_t batch, int64_t height, int64_t width,
                        int64_t tokens, bool guidance) {
  FluxInputs in;
  in.x = at::randn({batch, config.latent_channels, height, width});
  in.t = at::rand({batch}) * 0.9 + 0.05;
  in.context = at::randn({batch, tokens, config.context_dim});
  in.guidance = guidance ? at::rand({batch}) * 4 : at::zeros({batch});
  return in;
}

at::Tensor OurForward(const std::string& checkpoint, const FluxInputs& inputs,
                      const std::string& expected_name) {
  auto loaded = LoadChroma({checkpoint}, PlacementOptions{});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return {};
  EXPECT_EQ(loaded->config.name, expected_name);
  auto out = flux::FluxForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : at::Tensor();
}

struct Case {
  std::string preset;
  int64_t depth = 0, depth_single = 0;  // 0: the preset's
  int64_t batch = 1, height = 8, width = 12, tokens = 7;
  bool guidance = false;  // a guidance other than 0 (ComfyUI's input; diffusers has none)
  bool diffusers = true;
};

void Compare(const Case& c) {
  testing_util::TempDir dir("chroma-reference");
  FluxConfig config = *ChromaPreset(c.preset);
  if (c.depth > 0) config.depth = c.depth;
  if (c.depth_single > 0) config.depth_single = c.depth_single;
  const FluxInputs inputs = RandomInputs(config, c.batch, c.height, c.width, c.tokens, c.guidance);
  auto reference = testing_util::RunReferenceForward(RAYLIGHT_CHROMA_REFERENCE, ConfigJson(config),
                                                     {{"x", inputs.x},
                                                      {"t", inputs.t},
                                                      {"context", inputs.context},
                                                      {"guidance", inputs.guidance}},
                                                     dir.path(), RAYLIGHT_COMFYUI_WORKDIR,
                                                     {.diffusers = c.diffusers});
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
    std::printf("%s (%ld + %ld blocks, %ldx%ld latent) vs %s: relative L2 %.3g\n", c.preset.c_str(),
                static_cast<long>(config.depth), static_cast<long>(config.depth_single),
                static_cast<long>(c.height), static_cast<long>(c.width), name, error);
  }
}

TEST(ChromaModelTest, TinyMatchesDiffusersAndComfyUI) {
  Compare({.preset = "tiny-chroma", .batch = 2});
}

TEST(ChromaModelTest, GuidanceAndOddSidesMatchComfyUI) {
  Compare({.preset = "tiny-chroma", .height = 7, .width = 9, .guidance = true, .diffusers = false});
}

TEST(ChromaModelTest, RealWidthsMatchComfyUI) {
  // Chroma's widths (3072, 24 heads of 128, T5 4096, a 5120-wide approximator of 5 layers) with
  // one block of each kind: detected as chroma with fewer blocks.
  Compare({.preset = "chroma",
           .depth = 1,
           .depth_single = 1,
           .height = 4,
           .width = 6,
           .tokens = 5,
           .diffusers = false});
}

TEST(ChromaModelTest, IsItsOwnFamilyAndErrorsNameTheKeys) {
  testing_util::TempDir dir("chroma-family");
  const FluxConfig config = *ChromaPreset("tiny-chroma");
  auto reference =
      testing_util::RunReferenceForward(RAYLIGHT_CHROMA_REFERENCE, ConfigJson(config),
                                        {{"x", at::randn({1, 16, 4, 4})},
                                         {"t", at::full({1}, 0.5)},
                                         {"context", at::randn({1, 3, config.context_dim})},
                                         {"guidance", at::zeros({1})}},
                                        dir.path(), RAYLIGHT_COMFYUI_WORKDIR);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const std::string& file : {reference->diffusers_checkpoint, reference->comfyui_checkpoint}) {
    auto info = InspectModel({file});
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->family, "chroma") << file;
    EXPECT_EQ(info->variant, "tiny-chroma") << file;
    EXPECT_FALSE(info->guidance_distilled);
  }
  auto tensors = testing_util::ReadTensors(reference->comfyui_checkpoint);
  ASSERT_TRUE(tensors.ok());
  NamedTensors kept;
  for (const auto& [name, tensor] : *tensors) {
    if (name != "model.diffusion_model.distilled_guidance_layer.norms.2.scale") {
      kept.emplace_back(name, tensor);
    }
  }
  kept.emplace_back("model.diffusion_model.double_blocks.0.img_mod.lin.weight", at::ones({2}));
  const std::string broken = dir.path() + "/broken.safetensors";
  ASSERT_TRUE(WriteTensors(broken, kept).ok());
  auto inspected = InspectModel({broken});
  ASSERT_FALSE(inspected.ok());
  const std::string message(inspected.status().message());
  EXPECT_NE(message.find("missing keys: distilled_guidance_layer.norms.2.scale"), std::string::npos)
      << message;
  EXPECT_NE(message.find("extra keys: double_blocks.0.img_mod.lin.weight"), std::string::npos)
      << message;
}

TEST(ChromaModelTest, PresetCountsChromasNineBillionParameters) {
  const FluxConfig full = *ChromaPreset("chroma");
  EXPECT_TRUE(full.Validate().ok());
  // Chroma1-HD: 8.9 billion parameters.
  EXPECT_NEAR(static_cast<double>(full.ParameterCount()) / 1e9, 8.9, 0.1);
  EXPECT_EQ(3 * full.depth_single + 12 * full.depth + 2, full.modulation_rows);
}

}  // namespace
}  // namespace raylight::models::chroma
