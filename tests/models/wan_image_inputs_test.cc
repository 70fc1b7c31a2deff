// Wan's image inputs (I2V's start image, FLF2V's start and end images) against ComfyUI's own
// WanImageToVideo and WanFirstLastFrameToVideo nodes with CLIPVisionEncode
// (wan_image_reference.py), on a random Wan 2.1 VAE and a small random CLIP vision tower
// that ComfyUI loads with its own loaders; images of other aspects than the video's (the centre
// crop and bilinear scale of common_upscale); the conditioning's `y` built from them.
#include "models/wan/wan_image_inputs.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "models/vae/wan_vae_random.h"
#include "models/vision/clip_vision_config.h"
#include "models/wan/wan_conditioning.h"
#include "nlohmann/json.hpp"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::wan {
namespace {

using testing_util::RelativeL2;

using testing_util::ReadTensors;

// A CLIP vision weight: layer-norm gains near 1, small biases, embeddings of unit-ish scale,
// matrices with variance 1 / fan-in.
at::Tensor RandomClipWeight(const std::string& name, const std::vector<int64_t>& shape) {
  if (name.find("norm") != std::string::npos && name.ends_with(".weight")) {
    return 1 + 0.1 * at::randn(shape);
  }
  if (name.ends_with(".bias")) return 0.05 * at::randn(shape);
  if (name.find("embedding") != std::string::npos && shape.size() <= 2) {
    return 0.5 * at::randn(shape);
  }
  const int64_t fan_in = at::empty(shape, at::kMeta)[0].numel();
  return at::randn(shape) / std::sqrt(static_cast<double>(fan_in));
}

TEST(WanImageInputsTest, EqualComfyUisImageToVideoNodes) {
  testing_util::TempDir dir("wan_image_inputs");
  const uint64_t seed = std::random_device{}();
  at::manual_seed(seed);
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  // Wan 2.1's real widths: ComfyUI's VAE loader builds the real architecture.
  auto vae_config = vae::WanVaePreset("wan2.1");
  ASSERT_TRUE(vae_config.ok());
  const std::map<std::string, at::Tensor> vae_weights = vae::RandomWanVaeWeights(*vae_config, seed);
  vision::ClipVisionConfig clip_config;
  clip_config.width = 768;
  clip_config.heads = 12;
  clip_config.layers = 2;
  clip_config.mlp = 3072;
  clip_config.projection = 512;
  clip_config.activation = "quick_gelu";
  std::map<std::string, at::Tensor> clip_weights;
  NamedTensors clip_file;
  for (const auto& [name, shape] : vision::ClipVisionWeightShapes(clip_config)) {
    clip_weights[name] = RandomClipWeight(name, shape);
    clip_file.emplace_back(name == "visual_projection.weight" ? name : "vision_model." + name,
                           clip_weights[name]);
  }
  ASSERT_TRUE(WriteTensors(dir.path() + "/vae.safetensors",
                           NamedTensors(vae_weights.begin(), vae_weights.end()))
                  .ok());
  ASSERT_TRUE(WriteTensors(dir.path() + "/clip.safetensors", clip_file).ok());
  std::ofstream(dir.path() + "/clip.json") << nlohmann::json{
      {"hidden_size", 768},         {"intermediate_size", 3072},
      {"num_attention_heads", 12},  {"num_hidden_layers", 2},
      {"patch_size", 14},           {"image_size", 224},
      {"hidden_act", "quick_gelu"}, {"projection_dim", 512},
      {"num_channels", 3},          {"model_type", "clip_vision_model"},
      {"layer_norm_eps", 1e-5}}.dump();
  auto vae = vae::WanVae::FromWeights(*vae_config, vae_weights, vae::WanVaeOptions());
  ASSERT_TRUE(vae.ok()) << vae.status();
  auto clip =
      vision::ClipVision::FromWeights(clip_config, clip_weights, vision::ClipVisionOptions());
  ASSERT_TRUE(clip.ok()) << clip.status();

  const at::Tensor start = at::rand({1, 301, 199, 3});  // taller than the video: cropped rows
  const at::Tensor end = at::rand({1, 90, 256, 3});     // wider: cropped columns
  for (bool flf2v : {false, true}) {
    SCOPED_TRACE(flf2v ? "FLF2V" : "I2V");
    NamedTensors images = {{"start_image", start}};
    if (flf2v) images.emplace_back("end_image", end);
    ASSERT_TRUE(WriteTensors(dir.path() + "/images.safetensors", images).ok());
    const std::string expected_path = dir.path() + "/expected.safetensors";
    const absl::Status ran = testing_util::RunToCompletion(
        {RAYLIGHT_TEST_PYTHON, RAYLIGHT_WAN_IMAGE_REFERENCE, "make",
         "--vae=" + dir.path() + "/vae.safetensors", "--clip=" + dir.path() + "/clip.safetensors",
         "--clip-config=" + dir.path() + "/clip.json",
         "--images=" + dir.path() + "/images.safetensors", "--width=80", "--height=48",
         "--length=9", "--out=" + expected_path, "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL,
         "--workdir=" RAYLIGHT_COMFYUI_WORKDIR},
        dir.path() + "/reference.log", std::chrono::seconds(600));
    ASSERT_TRUE(ran.ok()) << ran;
    auto expected = ReadTensors(expected_path);
    ASSERT_TRUE(expected.ok()) << expected.status();

    WanImageRequest request;
    request.start_image = start;
    if (flf2v) request.end_image = end;
    request.width = 80;
    request.height = 48;
    request.length = 9;
    auto inputs = MakeWanImageInputs(request, **vae, clip->get());
    ASSERT_TRUE(inputs.ok()) << inputs.status();
    const at::Tensor& latent = expected->at("concat_latent_image");
    ASSERT_EQ(inputs->concat_latent_image.sizes(), latent.sizes());
    EXPECT_LT(RelativeL2(inputs->concat_latent_image, latent), 1e-5);
    ASSERT_EQ(inputs->concat_mask.sizes(), expected->at("concat_mask").sizes());
    EXPECT_TRUE(at::equal(inputs->concat_mask, expected->at("concat_mask")));
    ASSERT_EQ(inputs->clip_fea.sizes(), expected->at("clip_fea").sizes());
    // The CLIP preprocess rounds to 8 bits: a value on a rounding edge may differ by a level.
    EXPECT_LT(RelativeL2(inputs->clip_fea, expected->at("clip_fea")), 1e-4);
    // What the DiT receives: 4 mask channels (1 where given), then the normalised latent.
    const at::Tensor y = WanImageToY(inputs->concat_latent_image, inputs->concat_mask);
    EXPECT_EQ(y.size(1), 4 + latent.size(1));
    EXPECT_TRUE(
        at::equal(y.narrow(1, 0, 4).select(2, 0), at::ones_like(y.narrow(1, 0, 4).select(2, 0))));
  }

  // Bad requests are refused by field.
  WanImageRequest bad;
  bad.start_image = at::rand({1, 32, 32, 2});
  auto refused = MakeWanImageInputs(bad, **vae, clip->get());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("start_image"), std::string::npos);
  bad.start_image = start;
  bad.width = 84;
  refused = MakeWanImageInputs(bad, **vae, clip->get());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("width"), std::string::npos);
}

// TI2V-5B's start image: the LATENT and noise mask ComfyUI's Wan22ImageToVideoLatent makes, on a
// random Wan 2.2 VAE at its real widths (ComfyUI's loader builds those), an image of another
// aspect than the video's.
TEST(WanImageInputsTest, Wan22StartLatentEqualsComfyUisNode) {
  testing_util::TempDir dir("wan22_start_latent");
  const uint64_t seed = std::random_device{}();
  at::manual_seed(seed);
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  auto vae_config = vae::WanVaePreset("wan2.2");
  ASSERT_TRUE(vae_config.ok());
  const std::map<std::string, at::Tensor> vae_weights = vae::RandomWanVaeWeights(*vae_config, seed);
  ASSERT_TRUE(WriteTensors(dir.path() + "/vae.safetensors",
                           NamedTensors(vae_weights.begin(), vae_weights.end()))
                  .ok());
  const at::Tensor start = at::rand({1, 70, 45, 3});
  ASSERT_TRUE(WriteTensors(dir.path() + "/images.safetensors", {{"start_image", start}}).ok());
  const std::string expected_path = dir.path() + "/expected.safetensors";
  const absl::Status ran = testing_util::RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_WAN_IMAGE_REFERENCE, "wan22",
       "--vae=" + dir.path() + "/vae.safetensors", "--images=" + dir.path() + "/images.safetensors",
       "--width=64", "--height=32", "--length=9", "--out=" + expected_path,
       "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL, "--workdir=" RAYLIGHT_COMFYUI_WORKDIR},
      dir.path() + "/reference.log", std::chrono::seconds(600));
  ASSERT_TRUE(ran.ok()) << ran;
  auto expected = ReadTensors(expected_path);
  ASSERT_TRUE(expected.ok()) << expected.status();

  auto vae = vae::WanVae::FromWeights(*vae_config, vae_weights, vae::WanVaeOptions());
  ASSERT_TRUE(vae.ok()) << vae.status();
  WanImageRequest request;
  request.start_image = start;
  request.width = 64;
  request.height = 32;
  request.length = 9;
  auto made = MakeWan22StartLatent(request, **vae);
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_EQ(made->samples.sizes(), expected->at("samples").sizes());
  EXPECT_LT(RelativeL2(made->samples, expected->at("samples")), 1e-5);
  EXPECT_TRUE(at::equal(made->noise_mask, expected->at("noise_mask")));
  EXPECT_EQ(made->noise_mask.select(2, 0).sum().item<double>(), 0);
  EXPECT_GT(made->noise_mask.select(2, 1).min().item<double>(), 0.5);

  request.end_image = start;
  auto refused = MakeWan22StartLatent(request, **vae);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("end_image"), std::string::npos);
}

}  // namespace
}  // namespace raylight::models::wan
