// The image VAE's decoder (models/vae/kl_vae.h) against diffusers' AutoencoderKL on random
// weights (kl_vae_reference.py): a Flux-shaped VAE (16 latent channels, no post-quant
// convolution) and an SD-shaped one (4 channels, post-quant convolution, the weights under
// ComfyUI's `first_stage_model.` prefix), each in diffusers' names and in the LDM names BFL's and
// ComfyUI's files use, at latent sizes that are not square or even; float32 on the CPU, relative
// L2 under 1e-5. Then what is not a decoder, or not its latent, is refused by name.
#include "models/vae/kl_vae.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "models/vae/video_file.h"
#include "nlohmann/json.hpp"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::vae {
namespace {

using testing_util::ReadTensors;
using testing_util::RelativeL2;

struct Case {
  std::string name;
  nlohmann::json config;
};

// Writes the reference's files for `c` into a directory of the test's own.
std::string MakeReference(const testing_util::TempDir& dir, const Case& c) {
  const std::string sub = dir.path() + "/" + c.name;
  std::filesystem::create_directories(sub);
  std::ofstream(sub + "/config.json") << c.config.dump();
  const absl::Status ran = testing_util::RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_KL_VAE_REFERENCE, "--config=" + sub + "/config.json",
       absl::StrCat("--seed=", std::random_device{}() % 100000), "--out-dir=" + sub},
      sub + "/reference.log", std::chrono::seconds(300));
  EXPECT_TRUE(ran.ok()) << ran;
  return sub;
}

KlVaeOptions Cpu() { return KlVaeOptions{}; }

void ExpectDecodesAsDiffusers(const Case& c, const std::vector<int64_t>& channels,
                              bool post_quant) {
  testing_util::TempDir dir("kl-vae");
  const std::string sub = MakeReference(dir, c);
  auto expected = ReadTensors(sub + "/expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  for (const std::string spelling : {"diffusers", "ldm"}) {
    SCOPED_TRACE(spelling);
    auto vae = KlVae::Load({sub + "/" + spelling + ".safetensors"}, Cpu());
    ASSERT_TRUE(vae.ok()) << vae.status();
    const KlVaeConfig& config = (*vae)->config();
    EXPECT_EQ(config.latent_channels, c.config["latent"].get<int64_t>());
    EXPECT_EQ(config.level_channels, channels);
    EXPECT_EQ(config.blocks_per_level, c.config["layers"].get<int64_t>() + 1);
    EXPECT_EQ(config.post_quant_conv, post_quant);
    auto image = (*vae)->Decode(expected->at("latent"));
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->sizes(), expected->at("image").sizes());
    EXPECT_LT(RelativeL2(*image, expected->at("image")), 1e-5);
    // ComfyUI's one-frame LATENT [B, C, 1, h, w] decodes the same.
    auto framed = (*vae)->Decode(expected->at("latent").unsqueeze(2));
    ASSERT_TRUE(framed.ok()) << framed.status();
    EXPECT_TRUE(at::equal(*framed, *image));
  }
}

TEST(KlVaeTest, AFluxShapedDecoderEqualsDiffusersInBothSpellings) {
  ExpectDecodesAsDiffusers({"flux",
                            {{"latent", 16},
                             {"channels", {32, 64, 64}},
                             {"layers", 2},
                             {"post_quant", false},
                             {"prefix", ""},
                             {"height", 5},
                             {"width", 7},
                             {"batch", 2}}},
                           {32, 64, 64}, false);
}

TEST(KlVaeTest, AnSdShapedDecoderWithItsPostQuantConvAndAPrefixEqualsDiffusers) {
  ExpectDecodesAsDiffusers({"sd",
                            {{"latent", 4},
                             {"channels", {32, 32}},
                             {"layers", 1},
                             {"post_quant", true},
                             {"prefix", "first_stage_model."},
                             {"height", 6},
                             {"width", 3},
                             {"batch", 1}}},
                           {32, 32}, true);
}

// raylight-vae decodes a job's .latent with an image VAE too: ComfyUI's IMAGE bytes of
// diffusers' decode (within one step of the truncation to bytes).
TEST(KlVaeTest, RaylightVaeDecodesALatentFileWithAnImageVae) {
  testing_util::TempDir dir("kl-vae-cli");
  const std::string sub = MakeReference(dir, {"cli",
                                              {{"latent", 16},
                                               {"channels", {32, 32}},
                                               {"layers", 1},
                                               {"post_quant", false},
                                               {"prefix", ""},
                                               {"height", 4},
                                               {"width", 6},
                                               {"batch", 2}}});
  auto expected = ReadTensors(sub + "/expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  const std::string latent = dir.path() + "/x.latent";
  ASSERT_TRUE(models::WriteTensors(latent, {{"latent_tensor", expected->at("latent")}}).ok());
  const std::string out = dir.path() + "/x.safetensors";
  const absl::Status ran = testing_util::RunToCompletion(
      {RAYLIGHT_VAE_BINARY, "decode", "--vae=" + sub + "/ldm.safetensors", "--latent=" + latent,
       "--out=" + out},
      dir.path() + "/decode.log", std::chrono::seconds(120));
  ASSERT_TRUE(ran.ok()) << ran;
  auto images = ReadTensors(out);
  ASSERT_TRUE(images.ok()) << images.status();
  const at::Tensor want = PixelsToBytes(expected->at("image").unsqueeze(2));
  const at::Tensor got = images->at("images");
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE((got.to(at::kInt) - want.to(at::kInt)).abs().max().item<int>(), 1);
}

TEST(KlVaeTest, WhatIsNotAnImageDecoderOrItsLatentIsRefusedByName) {
  testing_util::TempDir dir("kl-vae-bad");
  // A file with no decoder.
  const std::string none = dir.path() + "/none.safetensors";
  ASSERT_TRUE(
      models::WriteTensors(none, {{"encoder.conv_in.weight", at::zeros({8, 3, 3, 3})}}).ok());
  auto no_decoder = KlVae::Load({none}, Cpu());
  ASSERT_FALSE(no_decoder.ok());
  EXPECT_NE(no_decoder.status().message().find("decoder"), std::string::npos)
      << no_decoder.status();
  // A decoder with a weight missing names it.
  const std::string sub = MakeReference(dir, {"cut",
                                              {{"latent", 4},
                                               {"channels", {32}},
                                               {"layers", 1},
                                               {"post_quant", false},
                                               {"prefix", ""},
                                               {"height", 2},
                                               {"width", 2},
                                               {"batch", 1}}});
  auto full = ReadTensors(sub + "/ldm.safetensors");
  ASSERT_TRUE(full.ok()) << full.status();
  models::NamedTensors cut;
  for (const auto& [name, tensor] : *full) {
    if (name != "decoder.mid.attn_1.q.weight") cut.emplace_back(name, tensor);
  }
  ASSERT_TRUE(models::WriteTensors(dir.path() + "/cut.safetensors", cut).ok());
  auto missing = KlVae::Load({dir.path() + "/cut.safetensors"}, Cpu());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("decoder.mid.attn_1.q.weight"), std::string::npos)
      << missing.status();
  // A latent of other channels.
  auto vae = KlVae::Load({sub + "/ldm.safetensors"}, Cpu());
  ASSERT_TRUE(vae.ok()) << vae.status();
  auto wrong = (*vae)->Decode(at::zeros({1, 16, 2, 2}));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("latent"), std::string::npos) << wrong.status();
}

}  // namespace
}  // namespace raylight::models::vae
