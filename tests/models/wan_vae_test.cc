// The Wan VAE (2.1 and 2.2) against the implementations that define its two spellings, on
// random weights at reduced widths with the real structure (wan_vae_reference.py): ComfyUI's
// own comfy/ldm/wan code on the official names, diffusers' AutoencoderKLWan on its names.
// Decode of 1, 2 and 5 latent frames (1, 5 and 17 frames), encode of 1, 5 and 17 frames, sizes
// that are no power of two; the frames streamed chunk by chunk; the banded parallel decode on 2
// and 3 Gloo ranks (rows that do not divide) equal to one process; bad files and inputs.
#include "models/vae/wan_vae.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/safetensors.h"
#include "models/core/safetensors_tensors.h"
#include "models/vae/wan_vae_keys.h"
#include "models/vae/wan_vae_random.h"
#include "nlohmann/json.hpp"
#include "tests/models/wan_test_util.h"
#include "tests/util/rank_launcher.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::vae {
namespace {

using testing_util::RelativeL2;

using testing_util::ReadTensors;

struct Case {
  std::string impl;  // comfy | diffusers
  int version;       // 21 | 22
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.impl << " " << c.version; }

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  return absl::StrCat(info.param.impl, "_", info.param.version);
}

// What a reference run made: the model file, the inputs and the reference's outputs.
struct Made {
  std::string model;
  std::map<std::string, at::Tensor> inputs, expected;
};

class WanVaeTest : public testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() { dir_ = new testing_util::TempDir("wan_vae"); }
  static void TearDownTestSuite() { delete dir_; }

  static nlohmann::json Config(int version) {
    if (version == 21) {
      return {{"dim", 8}, {"decoder_dim", 8}, {"z_dim", 16}, {"num_res_blocks", 2}};
    }
    return {{"dim", 8}, {"decoder_dim", 12}, {"z_dim", 48}, {"num_res_blocks", 2}};
  }

  // Tiles of 4 latent rows every 3.
  static WanVaeTiling Tiling(const Case& c) {
    const int64_t f = c.version == 21 ? 8 : 16;
    return {.size = 4 * f, .stride = 3 * f};
  }

  // Random inputs (a fresh seed per run), the reference's model and outputs.
  static Made MakeReference(const Case& c, const std::string& name) {
    const std::string sub = dir_->path() + "/" + name;
    std::filesystem::create_directories(sub);
    std::ofstream(sub + "/config.json") << Config(c.version).dump();
    const uint64_t seed = std::random_device{}();
    at::manual_seed(seed);
    const int64_t z = Config(c.version)["z_dim"];
    const int64_t f = c.version == 21 ? 8 : 16;
    Made made;
    // 3 x 5 latent rows and columns: odd, and no tile size divides them.
    made.inputs["latent_0"] = at::randn({1, z, 1, 3, 5});
    made.inputs["latent_1"] = at::randn({1, z, 2, 3, 5});
    made.inputs["latent_2"] = at::randn({1, z, 5, 3, 5});
    for (int frames : {1, 5, 17}) {
      made.inputs[absl::StrCat("video_", frames)] = at::rand({1, 3, frames, 3 * f, 5 * f}) * 2 - 1;
    }
    // diffusers' tiled decode: 4-row tiles every 3 rows over 7 x 9 latent rows and columns (3 x 3
    // tiles, the last ones cut short).
    if (c.impl == "diffusers") made.inputs["tile_0"] = at::randn({1, z, 3, 7, 9});
    NamedTensors inputs(made.inputs.begin(), made.inputs.end());
    EXPECT_TRUE(WriteTensors(sub + "/inputs.safetensors", inputs).ok());
    made.model = sub + "/vae.safetensors";
    const std::vector<std::string> args = {
        RAYLIGHT_TEST_PYTHON,
        RAYLIGHT_WAN_VAE_REFERENCE,
        "make",
        "--impl=" + c.impl,
        absl::StrCat("--version=", c.version),
        absl::StrCat("--seed=", seed % 100000),
        "--config=" + sub + "/config.json",
        "--latents=" + sub + "/inputs.safetensors",
        "--out-model=" + made.model,
        "--out-expected=" + sub + "/expected.safetensors",
        "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL,
        "--workdir=" RAYLIGHT_COMFYUI_WORKDIR,
        absl::StrCat("--tile=", Tiling(c).size, ",", Tiling(c).stride)};
    const absl::Status ran =
        testing_util::RunToCompletion(args, sub + "/reference.log", std::chrono::seconds(600));
    EXPECT_TRUE(ran.ok()) << ran << " (seed " << seed << ")";
    auto expected = ReadTensors(sub + "/expected.safetensors");
    EXPECT_TRUE(expected.ok()) << expected.status();
    if (expected.ok()) made.expected = *std::move(expected);
    return made;
  }

  static std::unique_ptr<WanVae> Load(const std::string& path) {
    auto vae = WanVae::Load({path}, WanVaeOptions());
    EXPECT_TRUE(vae.ok()) << vae.status();
    return vae.ok() ? *std::move(vae) : nullptr;
  }

  static testing_util::TempDir* dir_;
};

testing_util::TempDir* WanVaeTest::dir_ = nullptr;

TEST_P(WanVaeTest, DecodeAndEncodeEqualTheReference) {
  const Case c = GetParam();
  const Made made = MakeReference(c, CaseName({c, 0}));
  ASSERT_FALSE(made.expected.empty());
  std::unique_ptr<WanVae> vae = Load(made.model);
  ASSERT_NE(vae, nullptr);
  EXPECT_EQ(vae->config().version, c.version);
  EXPECT_EQ(vae->config().z_dim, Config(c.version)["z_dim"].get<int64_t>());
  EXPECT_EQ(vae->config().spatial_factor(), c.version == 21 ? 8 : 16);
  EXPECT_EQ(vae->config().temporal_factor(), 4);

  for (int i = 0; i < 3; ++i) {
    const at::Tensor& latent = made.inputs.at(absl::StrCat("latent_", i));
    // ComfyUI's decode leaves pixels unclamped (its VAE wrapper clamps), diffusers clamps.
    const at::Tensor expected = made.expected.at(absl::StrCat("decoded_", i)).clamp(-1, 1);
    ASSERT_GT(expected.abs().lt(1).to(at::kFloat).mean().item<double>(), 0.95)
        << "the reference's pixels saturate: the comparison would be weak";
    // Streamed: one frame, then four per latent frame.
    std::vector<int64_t> chunk_frames;
    std::vector<at::Tensor> chunks;
    const absl::Status decoded = vae->Decode(latent, RowBands(), [&](const at::Tensor& frames) {
      chunk_frames.push_back(frames.size(2));
      chunks.push_back(frames);
      return absl::OkStatus();
    });
    ASSERT_TRUE(decoded.ok()) << decoded;
    ASSERT_EQ(static_cast<int64_t>(chunk_frames.size()), latent.size(2));
    EXPECT_EQ(chunk_frames.front(), 1);
    for (size_t k = 1; k < chunk_frames.size(); ++k) EXPECT_EQ(chunk_frames[k], 4);
    const at::Tensor frames = at::cat(chunks, 2);
    ASSERT_EQ(frames.sizes(), expected.sizes()) << "latent_" << i;
    EXPECT_LT(RelativeL2(frames, expected), 1e-5) << "latent_" << i;
    EXPECT_LT((frames - expected).abs().max().item<double>(), 1e-4) << "latent_" << i;
  }
  for (int frames : {1, 5, 17}) {
    const at::Tensor& video = made.inputs.at(absl::StrCat("video_", frames));
    const at::Tensor& expected = made.expected.at(absl::StrCat("encoded_", frames));
    auto encoded = vae->Encode(video);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    ASSERT_EQ(encoded->sizes(), expected.sizes()) << frames << " frames";
    EXPECT_LT(RelativeL2(*encoded, expected), 1e-5) << frames << " frames";
  }

  // Tiles: diffusers' tiled decode (the blend included), streamed a chunk at a time. Against the
  // untiled decode small tiles are an approximation (each tile's middle attention and 3x3 convs
  // see the tile alone; at these widths the receptive field spans the image: 0.7-0.95 relative
  // L2 was seen, printed below); one tile that covers the latent is the untiled decode.
  if (c.impl == "diffusers") {
    const at::Tensor& latent = made.inputs.at("tile_0");
    std::vector<at::Tensor> chunks;
    const absl::Status tiled = vae->DecodeTiled(latent, Tiling(c), [&](const at::Tensor& frames) {
      chunks.push_back(frames);
      return absl::OkStatus();
    });
    ASSERT_TRUE(tiled.ok()) << tiled;
    EXPECT_EQ(chunks.size(), 3u);
    const at::Tensor frames = at::cat(chunks, 2);
    const at::Tensor& expected = made.expected.at("tiled_0");
    ASSERT_EQ(frames.sizes(), expected.sizes());
    EXPECT_LT(RelativeL2(frames, expected), 1e-5);
    EXPECT_LT((frames - expected).abs().max().item<double>(), 1e-4);
    auto untiled = vae->Decode(latent);
    ASSERT_TRUE(untiled.ok()) << untiled.status();
    std::printf("tiled vs untiled decode: relative L2 %.3g\n", RelativeL2(frames, *untiled));
    std::vector<at::Tensor> whole_tile;
    const int64_t f = vae->config().spatial_factor();
    ASSERT_TRUE(vae->DecodeTiled(latent, {.size = 12 * f, .stride = 9 * f},
                                 [&](const at::Tensor& chunk) {
                                   whole_tile.push_back(chunk);
                                   return absl::OkStatus();
                                 })
                    .ok());
    EXPECT_LT((at::cat(whole_tile, 2) - *untiled).abs().max().item<double>(), 1e-6);
    EXPECT_FALSE(vae->DecodeTiled(latent, {.size = 4 * 8 + 1, .stride = 8}, nullptr).ok());
  }

  // The parallel decode: 2 and 3 ranks over 3 latent rows and 5 latent frames (bands of 2 + 1
  // and 1 + 1 + 1 rows), each equal to the single process.
  const std::string sub = dir_->path() + "/" + CaseName({c, 0});
  NamedTensors latent_file = {{"latent", made.inputs.at("latent_2")}};
  ASSERT_TRUE(WriteTensors(sub + "/latent.safetensors", latent_file).ok());
  auto whole = vae->Decode(made.inputs.at("latent_2"));
  ASSERT_TRUE(whole.ok()) << whole.status();
  for (int size : {2, 3}) {
    const std::string out = absl::StrCat(sub, "/banded_", size, ".safetensors");
    auto outcomes =
        testing_util::LaunchRanks({RAYLIGHT_WAN_VAE_RANK_BINARY, "--vae=" + made.model,
                                   "--inputs=" + sub + "/latent.safetensors", "--out=" + out},
                                  size, std::chrono::milliseconds(300'000));
    for (const auto& outcome : outcomes) {
      EXPECT_EQ(outcome.exit_code, 0) << "rank " << outcome.rank << ":\n" << outcome.log;
    }
    auto banded = ReadTensors(out);
    ASSERT_TRUE(banded.ok()) << banded.status();
    const at::Tensor& frames = banded->at("decoded");
    ASSERT_EQ(frames.sizes(), whole->sizes()) << size << " ranks";
    EXPECT_LT((frames - *whole).abs().max().item<double>(), 1e-5) << size << " ranks";
  }
}

INSTANTIATE_TEST_SUITE_P(Spellings, WanVaeTest,
                         testing::Values(Case{"comfy", 21}, Case{"diffusers", 21},
                                         Case{"comfy", 22}, Case{"diffusers", 22}),
                         CaseName);

// The tiles a worker short of memory decodes in: the largest diffusers-shaped tile whose
// estimated peak fits, never under four latent rows.
TEST(WanVaeConfigTest, TilesFitTheFreeMemory) {
  for (const char* preset : {"wan2.1", "wan2.2"}) {
    auto config = WanVaePreset(preset);
    ASSERT_TRUE(config.ok());
    config->encoder_dim = 8;
    config->decoder_dim = 8;
    auto vae = WanVae::FromWeights(*config, RandomWanVaeWeights(*config, 1), WanVaeOptions());
    ASSERT_TRUE(vae.ok()) << vae.status();
    const int64_t unit = 4 * config->spatial_factor();
    for (int64_t free :
         {(*vae)->DecodePeakBytes(720, 1280) / 4, (*vae)->DecodePeakBytes(480, 832), int64_t{1}}) {
      const WanVaeTiling tiling = (*vae)->TilingWithin(free);
      EXPECT_EQ(tiling.size % unit, 0) << preset;
      EXPECT_EQ(tiling.stride, tiling.size / 4 * 3) << preset;
      if (tiling.size > unit) {
        EXPECT_LE((*vae)->DecodePeakBytes(tiling.size, tiling.size), free) << preset;
        EXPECT_GT((*vae)->DecodePeakBytes(tiling.size + unit, tiling.size + unit), free) << preset;
      } else {
        EXPECT_EQ(tiling.size, unit) << preset;
      }
    }
  }
}

TEST(WanVaeConfigTest, PresetsHaveTheRealShapes) {
  auto wan21 = WanVaePreset("wan2.1");
  ASSERT_TRUE(wan21.ok());
  const auto shapes = WanVaeWeightShapes(*wan21);
  // Wan 2.1's VAE file: 194 tensors, decoder.conv1 [384, 16, 3, 3, 3].
  EXPECT_EQ(shapes.size(), 194u);
  EXPECT_EQ(shapes.at("decoder.conv1.weight"), (std::vector<int64_t>{384, 16, 3, 3, 3}));
  EXPECT_EQ(shapes.at("decoder.upsamples.3.resample.1.weight"),
            (std::vector<int64_t>{192, 384, 3, 3}));
  EXPECT_EQ(shapes.at("decoder.upsamples.3.time_conv.weight"),
            (std::vector<int64_t>{768, 384, 3, 1, 1}));
  auto wan22 = WanVaePreset("wan2.2");
  ASSERT_TRUE(wan22.ok());
  const auto shapes22 = WanVaeWeightShapes(*wan22);
  EXPECT_EQ(shapes22.at("decoder.conv1.weight"), (std::vector<int64_t>{1024, 48, 3, 3, 3}));
  EXPECT_EQ(shapes22.at("encoder.conv1.weight"), (std::vector<int64_t>{160, 12, 3, 3, 3}));
  EXPECT_EQ(shapes22.at("decoder.head.2.weight"), (std::vector<int64_t>{12, 256, 3, 3, 3}));
  // The detection reads each preset back from its shapes.
  for (const WanVaeConfig* preset : {&*wan21, &*wan22}) {
    auto detected = DetectWanVaeConfig(WanVaeWeightShapes(*preset));
    ASSERT_TRUE(detected.ok()) << detected.status();
    EXPECT_EQ(detected->name, preset->name);
    EXPECT_EQ(detected->temporal_downsample, preset->temporal_downsample);
    EXPECT_EQ(detected->num_res_blocks, preset->num_res_blocks);
  }
}

TEST(WanVaeConfigTest, BadFilesAndInputsAreRefusedByName) {
  testing_util::TempDir dir("wan_vae_bad");
  auto config = WanVaePreset("wan2.1");
  ASSERT_TRUE(config.ok());
  config->encoder_dim = 4;
  config->decoder_dim = 4;
  std::map<std::string, at::Tensor> weights;
  for (const auto& [name, shape] : WanVaeWeightShapes(*config)) {
    weights[name] = at::randn(shape) * 0.1;
  }
  // A missing weight, a misshapen one, and a file that is not a VAE.
  NamedTensors missing(weights.begin(), weights.end());
  missing.erase(std::find_if(missing.begin(), missing.end(), [](const auto& named) {
    return named.first == "decoder.middle.1.proj.weight";
  }));
  ASSERT_TRUE(WriteTensors(dir.path() + "/missing.safetensors", missing).ok());
  auto loaded = WanVae::Load({dir.path() + "/missing.safetensors"}, WanVaeOptions());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("decoder.middle.1.proj.weight"), std::string::npos)
      << loaded.status();

  NamedTensors misshapen(weights.begin(), weights.end());
  for (auto& [name, tensor] : misshapen) {
    if (name == "decoder.upsamples.0.residual.2.weight") tensor = at::randn({8, 16, 3, 3, 3});
  }
  ASSERT_TRUE(WriteTensors(dir.path() + "/misshapen.safetensors", misshapen).ok());
  loaded = WanVae::Load({dir.path() + "/misshapen.safetensors"}, WanVaeOptions());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("decoder.upsamples.0.residual.2.weight"),
            std::string::npos)
      << loaded.status();

  NamedTensors other = {{"blocks.0.self_attn.q.weight", at::randn({4, 4})}};
  ASSERT_TRUE(WriteTensors(dir.path() + "/other.safetensors", other).ok());
  loaded = WanVae::Load({dir.path() + "/other.safetensors"}, WanVaeOptions());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("Wan VAE"), std::string::npos) << loaded.status();

  auto vae = WanVae::FromWeights(*config, weights, WanVaeOptions());
  ASSERT_TRUE(vae.ok()) << vae.status();
  auto wrong_channels = (*vae)->Decode(at::randn({1, 4, 1, 2, 2}));
  ASSERT_FALSE(wrong_channels.ok());
  EXPECT_NE(wrong_channels.status().message().find("latent"), std::string::npos);
  auto wrong_size = (*vae)->Encode(at::randn({1, 3, 1, 12, 16}));
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.status().message().find("video"), std::string::npos);
  // Over more ranks than latent rows: refused before anything runs.
  EXPECT_FALSE(RowBands::Split(nullptr, 0).ok());
}

}  // namespace
}  // namespace raylight::models::vae
