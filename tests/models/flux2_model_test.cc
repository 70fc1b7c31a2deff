// Our FLUX.2 forward (the Flux forward with SwiGLU MLPs, shared modulation, no biases, 4-axis
// RoPE) against diffusers' Flux2Transformer2DModel with its own random weights, on fresh random
// inputs (ComfyUI 0.3.64 predates FLUX.2), loaded from diffusers' names and from Black Forest
// Labs' (ComfyUI's files). fp32 on the CPU, relative L2 under 1e-4: the tiny size
// and FLUX.2's head geometry (heads of 128, RoPE 32 x 4 at theta 2000, text 15360 wide) with one
// block of each kind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/safetensors_tensors.h"
#include "models/family/model_info.h"
#include "models/flux/flux_keys.h"
#include "models/flux/flux_model.h"
#include "models/flux2/flux2_family.h"
#include "models/flux2/flux2_keys.h"
#include "tests/models/reference_forward.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::flux2 {
namespace {

using flux::FluxConfig;
using flux::FluxInputs;
using testing_util::RelativeL2;

std::string ConfigJson(const FluxConfig& c) {
  return absl::StrCat("{\"hidden\": ", c.hidden, ", \"heads\": ", c.num_heads,
                      ", \"depth\": ", c.depth, ", \"depth_single\": ", c.depth_single,
                      ", \"context_dim\": ", c.context_dim, ", \"axes_dim\": [",
                      absl::StrJoin(c.axes_dim, ", "), "]}");
}

FluxInputs RandomInputs(const FluxConfig& config, int64_t batch, int64_t height, int64_t width,
                        int64_t tokens) {
  FluxInputs in;
  in.x = at::randn({batch, config.latent_channels, height, width});
  in.t = at::rand({batch}) * 0.9 + 0.05;
  in.context = at::randn({batch, tokens, config.context_dim});
  in.guidance = at::rand({batch}) * 4 + 1;
  return in;
}

absl::StatusOr<testing_util::ReferenceForward> Reference(const std::string& dir,
                                                         const FluxConfig& config,
                                                         const FluxInputs& inputs) {
  return testing_util::RunReferenceForward(RAYLIGHT_FLUX2_REFERENCE, ConfigJson(config),
                                           {{"x", inputs.x},
                                            {"t", inputs.t},
                                            {"context", inputs.context},
                                            {"guidance", inputs.guidance}},
                                           dir, "", {.comfyui = false});
}

// Our forward on the reference's weights in diffusers' names and in BFL's (ComfyUI's files),
// each against diffusers' output.
void Compare(FluxConfig config, const FluxInputs& inputs, const std::string& expected_name) {
  testing_util::TempDir dir("flux2-reference");
  auto reference = Reference(dir.path(), config, inputs);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const std::string& checkpoint :
       {reference->diffusers_checkpoint, dir.path() + "/bfl.safetensors"}) {
    auto loaded = LoadFlux2({checkpoint}, PlacementOptions{});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->config.name, expected_name);
    auto ours = flux::FluxForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
    ASSERT_TRUE(ours.ok()) << ours.status();
    ASSERT_EQ(ours->sizes(), reference->diffusers.sizes());
    const double error = RelativeL2(*ours, reference->diffusers);
    EXPECT_LT(error, 1e-4) << checkpoint;
    std::printf("%s (%ld + %ld blocks, %s) vs diffusers: relative L2 %.3g\n", expected_name.c_str(),
                static_cast<long>(config.depth), static_cast<long>(config.depth_single),
                checkpoint.c_str(), error);
  }
}

TEST(Flux2ModelTest, TinyMatchesDiffusers) {
  const FluxConfig config = *Flux2Preset("tiny-flux2");
  Compare(config, RandomInputs(config, 2, 4, 6, 7), "tiny-flux2");
}

TEST(Flux2ModelTest, RealHeadGeometryMatchesDiffusers) {
  // Heads of 128 with RoPE 32 x 4, FLUX.2's 15360-wide text, two heads, one block of each kind.
  FluxConfig config = *Flux2Preset("flux2-dev");
  config.hidden = 256;
  config.num_heads = 2;
  config.mlp_hidden = 3 * config.hidden;
  config.depth = 1;
  config.depth_single = 1;
  Compare(config, RandomInputs(config, 1, 3, 5, 6), "custom");
}

TEST(Flux2ModelTest, IsItsOwnFamilyAndErrorsNameTheKeys) {
  testing_util::TempDir dir("flux2-family");
  const FluxConfig config = *Flux2Preset("tiny-flux2");
  auto reference = Reference(dir.path(), config, RandomInputs(config, 1, 2, 2, 3));
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const std::string& checkpoint :
       {reference->diffusers_checkpoint, dir.path() + "/bfl.safetensors"}) {
    auto info = InspectModel({checkpoint});
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->family, "flux2") << checkpoint;
    EXPECT_EQ(info->variant, "tiny-flux2");
    EXPECT_TRUE(info->guidance_distilled);
    EXPECT_EQ(info->spatial_factor, 16);
  }
  auto tensors = testing_util::ReadTensors(reference->diffusers_checkpoint);
  ASSERT_TRUE(tensors.ok());
  NamedTensors kept;
  for (const auto& [name, tensor] : *tensors) {
    if (name != "single_transformer_blocks.1.attn.to_out.weight") kept.emplace_back(name, tensor);
  }
  kept.emplace_back("transformer_blocks.0.attn.to_q.bias", at::ones({128}));
  const std::string broken = dir.path() + "/broken.safetensors";
  ASSERT_TRUE(WriteTensors(broken, kept).ok());
  auto inspected = InspectModel({broken});
  ASSERT_FALSE(inspected.ok());
  const std::string message(inspected.status().message());
  EXPECT_NE(message.find("missing keys: single_blocks.1.linear2.weight"), std::string::npos)
      << message;
  EXPECT_NE(message.find("extra keys: double_blocks.0.img_attn.qkv.q.bias"), std::string::npos)
      << message;
}

// ComfyUI ships FLUX.2 fp8-scaled (flux2_dev_fp8mixed): every matrix e4m3 with a
// `<module>.scale_weight`, a `scaled_fp8` marker, input scales. The head's header read must take it
// for the model it is (the scales are no extra weights), and the loaded model must compute with
// e4m3 x scale: the same prediction as a plain file of exactly those values.
TEST(Flux2ModelTest, AnFp8ScaledFileIsInspectedAndComputesItsScaledValues) {
  testing_util::TempDir dir("flux2-fp8");
  const FluxConfig config = *Flux2Preset("tiny-flux2");
  const std::string prefix = "model.diffusion_model.";
  NamedTensors scaled = {{prefix + "scaled_fp8", at::zeros({2}, at::kFloat8_e4m3fn)}};
  NamedTensors plain;
  for (const auto& [internal, shape] : flux::FluxWeightShapes(config, flux::FluxSpelling::kFused)) {
    // BFL's names are the internal ones but for the shared modulation's.
    std::string name = internal;
    for (const auto& [ours, bfl] :
         {std::pair<std::string, std::string>{"double_mod_img.", "double_stream_modulation_img."},
          {"double_mod_txt.", "double_stream_modulation_txt."},
          {"single_mod.", "single_stream_modulation."}}) {
      if (name.starts_with(ours)) name = bfl + name.substr(ours.size());
    }
    at::Tensor values = at::randn(shape);
    if (shape.size() != 2) {
      plain.emplace_back(name, 1 + 0.1 * values);
      scaled.emplace_back(prefix + name, 1 + 0.1 * values);
      continue;
    }
    values = values / std::sqrt(static_cast<double>(shape[1]));
    const at::Tensor scale = values.abs().max() / 448;
    const at::Tensor e4m3 = (values / scale).to(at::kFloat8_e4m3fn);
    const std::string module = prefix + name.substr(0, name.size() - std::string(".weight").size());
    scaled.emplace_back(prefix + name, e4m3);
    scaled.emplace_back(module + ".scale_weight", scale.reshape({1}));
    scaled.emplace_back(module + ".input_scale", at::ones({1}));
    plain.emplace_back(name, e4m3.to(at::kFloat) * scale);
  }
  const std::string scaled_path = dir.path() + "/flux2_fp8_scaled.safetensors";
  const std::string plain_path = dir.path() + "/flux2_plain.safetensors";
  ASSERT_TRUE(WriteTensors(scaled_path, scaled).ok());
  ASSERT_TRUE(WriteTensors(plain_path, plain).ok());

  auto info = InspectModel({scaled_path});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->family, "flux2");
  EXPECT_EQ(info->variant, "tiny-flux2");

  const FluxInputs inputs = RandomInputs(config, 1, 3, 4, 5);
  std::vector<at::Tensor> predictions;
  for (const std::string& path : {scaled_path, plain_path}) {
    auto loaded = LoadFlux2({path}, PlacementOptions{});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    auto forward = flux::FluxForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
    ASSERT_TRUE(forward.ok()) << forward.status();
    predictions.push_back(*forward);
  }
  EXPECT_LT((predictions[0] - predictions[1]).abs().max().item<double>(), 1e-6);
}

TEST(Flux2ModelTest, PresetCountsThirtyTwoBillionParameters) {
  const FluxConfig dev = *Flux2Preset("flux2-dev");
  EXPECT_TRUE(dev.Validate().ok());
  // FLUX.2 [dev]: 32 billion parameters (BFL's model card).
  EXPECT_NEAR(static_cast<double>(dev.ParameterCount()) / 1e9, 32.2, 0.3);
  EXPECT_EQ(dev.num_blocks(), 56);
}

}  // namespace
}  // namespace raylight::models::flux2
