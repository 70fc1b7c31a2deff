// The image VAE (models/vae/kl_vae.h) against diffusers' AutoencoderKL on random weights
// (kl_vae_reference.py), decoding and encoding: a Flux-shaped VAE (16 latent channels, no
// (post-)quant convolution) and an SD-shaped one (4 channels, quant and post-quant convolutions,
// the weights under ComfyUI's `first_stage_model.` prefix), each in diffusers' names and in the
// LDM names BFL's and ComfyUI's files use, at latent sizes that are not square or even; float32
// on the CPU, relative L2 under 1e-5. Then what is not a decoder, or not its latent, is refused
// by name; raylight-vae encodes an image file as ComfyUI's VAEEncode does.
#include "models/vae/kl_vae.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/latent_file.h"
#include "models/core/png.h"
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

void ExpectDecodesAsDiffusers(const Case& c, const std::vector<int64_t>& channels, bool post_quant,
                              int64_t latent_patch = 1) {
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
    EXPECT_EQ(config.latent_patch, latent_patch);
    auto image = (*vae)->Decode(expected->at("latent"));
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->sizes(), expected->at("image").sizes());
    EXPECT_LT(RelativeL2(*image, expected->at("image")), 1e-5);
    // ComfyUI's one-frame LATENT [B, C, 1, h, w] decodes the same.
    auto framed = (*vae)->Decode(expected->at("latent").unsqueeze(2));
    ASSERT_TRUE(framed.ok()) << framed.status();
    EXPECT_TRUE(at::equal(*framed, *image));
    // The encoder: the posterior's mode, as diffusers' (and ComfyUI's VAEEncode) takes it.
    EXPECT_TRUE(config.encoder);
    auto encoded = (*vae)->Encode(expected->at("pixels"));
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    EXPECT_EQ(encoded->sizes(), expected->at("encoded").sizes());
    EXPECT_LT(RelativeL2(*encoded, expected->at("encoded")), 1e-5);
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

// FLUX.2's VAE (AutoencoderKLFlux2): its LATENT is the 32-channel latent in 2x2 patches
// normalised by the file's batch-norm statistics, decoded and encoded as Flux2Pipeline does
// around the VAE (quant and post-quant convolutions, ComfyUI's prefix).
TEST(KlVaeTest, AFlux2VaeDecodesAndEncodesItsPatchedLatentAsItsPipeline) {
  ExpectDecodesAsDiffusers({"flux2",
                            {{"latent", 8},
                             {"channels", {32, 32, 64}},
                             {"layers", 1},
                             {"post_quant", true},
                             {"prefix", "vae."},
                             {"height", 3},
                             {"width", 5},
                             {"batch", 1},
                             {"flux2", true}}},
                           {32, 32, 64}, true, 2);
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

// raylight-vae encodes an image file as ComfyUI's VAEEncode does: a PNG whose sides are not
// multiples of the VAE's factor (4 here) cropped as vae_encode_crop_pixels crops (the remainder's
// floor half off the top and left), its bytes / 255 to [-1, 1], the encoder's mean (equal to
// diffusers' above), written as a .latent.
TEST(KlVaeTest, RaylightVaeEncodesAnImageFileAsComfyUisVaeEncode) {
  testing_util::TempDir dir("kl-vae-encode");
  const std::string sub = MakeReference(dir, {"encode",
                                              {{"latent", 16},
                                               {"channels", {32, 32, 32}},
                                               {"layers", 1},
                                               {"post_quant", false},
                                               {"prefix", "vae."},
                                               {"height", 2},
                                               {"width", 2},
                                               {"batch", 1}}});
  const int height = 4 * 5 + 3, width = 4 * 7 + 1;
  RgbImage image{.width = width, .height = height};
  const at::Tensor bytes = at::randint(0, 256, {height, width, 3}, at::kByte);
  image.pixels.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  auto png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();
  const std::string in = dir.path() + "/in.png";
  std::ofstream(in, std::ios::binary) << *png;
  const std::string out = dir.path() + "/in.latent";
  const absl::Status ran = testing_util::RunToCompletion(
      {RAYLIGHT_VAE_BINARY, "encode", "--vae=" + sub + "/ldm.safetensors", "--image=" + in,
       "--out=" + out},
      dir.path() + "/encode.log", std::chrono::seconds(120));
  ASSERT_TRUE(ran.ok()) << ran;
  auto latent = ReadLatentFile(out);
  ASSERT_TRUE(latent.ok()) << latent.status();

  auto vae = KlVae::Load({sub + "/ldm.safetensors"}, Cpu());
  ASSERT_TRUE(vae.ok()) << vae.status();
  const at::Tensor cropped = bytes.narrow(0, 1, 4 * 5).narrow(1, 0, 4 * 7).to(at::kFloat) / 255;
  auto expected = (*vae)->Encode(cropped.permute({2, 0, 1}).unsqueeze(0) * 2 - 1);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ(latent->sizes(), (std::vector<int64_t>{1, 16, 5, 7}));
  EXPECT_LT((*latent - *expected).abs().max().item<double>(), 1e-6);
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
  // Pixels that are not RGB.
  auto not_rgb = (*vae)->Encode(at::zeros({1, 4, 2, 2}));
  ASSERT_FALSE(not_rgb.ok());
  EXPECT_NE(not_rgb.status().message().find("pixels"), std::string::npos) << not_rgb.status();
  // A decoder-only file decodes and refuses to encode; an encoder with a weight missing names it.
  models::NamedTensors decoder_only, encoder_cut;
  for (const auto& [name, tensor] : *full) {
    if (!name.starts_with("encoder.")) decoder_only.emplace_back(name, tensor);
    if (name != "encoder.mid.block_2.conv1.bias") encoder_cut.emplace_back(name, tensor);
  }
  ASSERT_TRUE(models::WriteTensors(dir.path() + "/decoder.safetensors", decoder_only).ok());
  auto decoder = KlVae::Load({dir.path() + "/decoder.safetensors"}, Cpu());
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  EXPECT_TRUE((*decoder)->Decode(at::zeros({1, 4, 2, 2})).ok());
  auto no_encoder = (*decoder)->Encode(at::zeros({1, 3, 2, 2}));
  ASSERT_FALSE(no_encoder.ok());
  EXPECT_NE(no_encoder.status().message().find("no encoder"), std::string::npos)
      << no_encoder.status();
  ASSERT_TRUE(models::WriteTensors(dir.path() + "/encoder_cut.safetensors", encoder_cut).ok());
  auto cut_encoder = KlVae::Load({dir.path() + "/encoder_cut.safetensors"}, Cpu());
  ASSERT_FALSE(cut_encoder.ok());
  EXPECT_NE(cut_encoder.status().message().find("encoder is missing 1 weight(s): "
                                                "encoder.mid.block_2.conv1.bias"),
            std::string::npos)
      << cut_encoder.status();
}

}  // namespace
}  // namespace raylight::models::vae
