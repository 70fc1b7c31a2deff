// The CLIP vision encoder against transformers' CLIPVisionModelWithProjection and ComfyUI's own
// clip_preprocess / CLIPVisionModelProjection (clip_vision_reference.py) on random weights:
// ViT-H/14's widths (1280, 16 heads, gelu) and ViT-L-like ones (768, 12 heads, quick_gelu) with a
// few layers; images of 832x480, 224x224 and an odd 199x301, cropped (ComfyUI's default) and
// resized (the official Wan code's); bad files and inputs refused by name.
#include "models/vision/clip_vision.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "nlohmann/json.hpp"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::vision {
namespace {

using testing_util::ReadTensors;
using testing_util::RelativeL2;

class ClipVisionTest : public testing::TestWithParam<nlohmann::json> {};

TEST_P(ClipVisionTest, EncodesAsTransformersAndComfyUi) {
  const nlohmann::json config = GetParam();
  testing_util::TempDir dir("clip_vision");
  std::ofstream(dir.path() + "/config.json") << config.dump();
  const uint64_t seed = std::random_device{}();
  at::manual_seed(seed);
  NamedTensors images = {{"image_0", at::rand({1, 480, 832, 3})},
                         {"image_1", at::rand({1, 224, 224, 3})},
                         {"image_2", at::rand({1, 301, 199, 3})}};
  ASSERT_TRUE(WriteTensors(dir.path() + "/images.safetensors", images).ok());
  const absl::Status ran = testing_util::RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_CLIP_VISION_REFERENCE, "make",
       absl::StrCat("--seed=", seed % 100000), "--config=" + dir.path() + "/config.json",
       "--images=" + dir.path() + "/images.safetensors",
       "--out-model=" + dir.path() + "/clip.safetensors",
       "--out-expected=" + dir.path() + "/expected.safetensors",
       "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL, "--workdir=" RAYLIGHT_COMFYUI_WORKDIR},
      dir.path() + "/reference.log", std::chrono::seconds(600));
  ASSERT_TRUE(ran.ok()) << ran << " (seed " << seed << ")";
  auto expected = ReadTensors(dir.path() + "/expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  auto encoder = ClipVision::Load({dir.path() + "/clip.safetensors"}, ClipVisionOptions());
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  EXPECT_EQ((*encoder)->config().heads, config["heads"].get<int64_t>());
  EXPECT_EQ((*encoder)->config().activation, config["activation"].get<std::string>());
  EXPECT_EQ((*encoder)->config().tokens(), 257);

  for (const auto& [name, image] : images) {
    const std::string index = name.substr(name.find('_') + 1);
    for (bool crop : {true, false}) {
      auto pixels = (*encoder)->Preprocess(image, crop);
      ASSERT_TRUE(pixels.ok()) << pixels.status();
      const at::Tensor& want =
          expected->at(absl::StrCat("pixels_", index, crop ? "_crop" : "_resize"));
      ASSERT_EQ(pixels->sizes(), want.sizes());
      // 8-bit rounding inside the preprocess: a value on a rounding edge may land one level
      // (1/255 / std, ~0.015) apart; all but a handful are equal.
      const at::Tensor diff = (*pixels - want).abs();
      EXPECT_LT(diff.gt(1e-5).to(at::kFloat).mean().item<double>(), 1e-3) << name << " " << crop;
      EXPECT_LT(diff.max().item<double>(), 0.02) << name << " " << crop;
    }
    auto out = (*encoder)->Encode(expected->at("pixels_" + index + "_crop"));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_LT(RelativeL2(out->penultimate, expected->at("penultimate_" + index)), 1e-5) << name;
    EXPECT_LT(RelativeL2(out->penultimate, expected->at("comfy_penultimate_" + index)), 1e-5)
        << name;
    EXPECT_LT(RelativeL2(out->last_hidden, expected->at("last_" + index)), 1e-5) << name;
    EXPECT_LT(RelativeL2(out->image_embeds, expected->at("embeds_" + index)), 1e-5) << name;
  }

  // Bad inputs: named.
  auto bad_image = (*encoder)->Preprocess(at::rand({1, 3, 64, 64}).narrow(3, 0, 2));
  ASSERT_FALSE(bad_image.ok());
  EXPECT_NE(bad_image.status().message().find("image"), std::string::npos);
  auto bad_pixels = (*encoder)->Encode(at::rand({1, 3, 100, 100}));
  ASSERT_FALSE(bad_pixels.ok());
  EXPECT_NE(bad_pixels.status().message().find("pixels"), std::string::npos);
  NamedTensors not_clip = {{"vision_model.embeddings.class_embedding", at::rand({8})}};
  ASSERT_TRUE(WriteTensors(dir.path() + "/not_clip.safetensors", not_clip).ok());
  auto refused = ClipVision::Load({dir.path() + "/not_clip.safetensors"}, ClipVisionOptions());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("CLIP vision"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Towers, ClipVisionTest,
                         testing::Values(nlohmann::json{{"width", 1280},
                                                        {"heads", 16},
                                                        {"layers", 3},
                                                        {"mlp", 5120},
                                                        {"activation", "gelu"}},
                                         nlohmann::json{{"width", 768},
                                                        {"heads", 12},
                                                        {"layers", 2},
                                                        {"mlp", 3072},
                                                        {"activation", "quick_gelu"}}),
                         [](const testing::TestParamInfo<nlohmann::json>& info) {
                           return absl::StrCat("Width", info.param["width"].get<int>());
                         });

}  // namespace
}  // namespace raylight::models::vision
