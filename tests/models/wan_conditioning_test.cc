// Wan conditioning files: round trips, what ComfyUI-style files (bf16, a leading batch of 1) look
// like, and every bad file refused with the file and field named.
#include "models/wan/wan_conditioning.h"

#include <gtest/gtest.h>

#include <random>

#include "models/core/latent_format.h"
#include "models/core/safetensors_tensors.h"
#include "models/wan/wan_config.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::wan {
namespace {

class WanConditioningTest : public testing::Test {
 protected:
  std::string Write(const NamedTensors& tensors) {
    const std::string path = dir_.path() + "/c" + std::to_string(n_++) + ".safetensors";
    EXPECT_TRUE(WriteTensors(path, tensors).ok());
    return path;
  }
  void ExpectError(const NamedTensors& tensors, const WanConfig& config, const std::string& what) {
    auto read = ReadWanConditioning(Write(tensors), config);
    ASSERT_FALSE(read.ok()) << what;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
    EXPECT_NE(read.status().message().find(what), std::string::npos) << read.status();
    EXPECT_NE(read.status().message().find("conditioning "), std::string::npos) << read.status();
  }
  testing_util::TempDir dir_{"conditioning"};
  int n_ = 0;
};

TEST_F(WanConditioningTest, RoundTripsForEveryFamily) {
  for (const char* preset : {"tiny-t2v", "tiny-i2v", "tiny-ti2v"}) {
    const WanConfig config = *WanPreset(preset);
    const WanConditioning made = RandomWanConditioning(config, 7, std::random_device{}(), 2, 4, 6);
    const std::string path = dir_.path() + "/" + preset + ".safetensors";
    ASSERT_TRUE(WriteWanConditioning(path, made).ok());
    auto read = ReadWanConditioning(path, config);
    ASSERT_TRUE(read.ok()) << preset << ": " << read.status();
    EXPECT_TRUE(at::equal(read->text, made.text)) << preset;
    EXPECT_EQ(read->clip_fea.defined(), config.i2v()) << preset;
    if (config.i2v()) {
      EXPECT_TRUE(at::equal(read->clip_fea, made.clip_fea));
      EXPECT_TRUE(at::equal(read->y, made.y));
    }
  }
}

TEST_F(WanConditioningTest, AcceptsBf16WithOrWithoutTheBatchDimension) {
  const WanConfig config = *WanPreset("tiny-t2v");
  at::Tensor text = at::randn({9, config.text_dim});
  for (const at::Tensor& stored : {text.to(at::kBFloat16), text.unsqueeze(0).to(at::kBFloat16)}) {
    auto read = ReadWanConditioning(Write({{"text", stored}}), config);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->text.sizes(), (std::vector<int64_t>{1, 9, config.text_dim}));
    EXPECT_EQ(read->text.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(read->text[0], text.to(at::kBFloat16).to(at::kFloat)));
  }
}

TEST_F(WanConditioningTest, ComfyUisImageToVideoInputsBecomeY) {
  // WanImageToVideo's concat_latent_image (the VAE's latent) and concat_mask (0 on given frames)
  // become Wan's y as ComfyUI's WAN21.concat_cond builds it: 1 - mask on 4 channels, then the
  // image latent in the model's space.
  const WanConfig i2v = *WanPreset("tiny-i2v");
  const at::Tensor image = at::randn({1, 16, 3, 4, 5}),
                   clip = at::randn({i2v.image_tokens, i2v.image_dim});
  at::Tensor mask = at::ones({1, 1, 3, 4, 5});
  mask.slice(2, 0, 1).zero_();
  const at::Tensor text = at::randn({5, 48});
  auto read = ReadWanConditioning(Write({{"text", text},
                                         {"clip_fea", clip},
                                         {"concat_latent_image", image},
                                         {"concat_mask", mask}}),
                                  i2v);
  ASSERT_TRUE(read.ok()) << read.status();
  const at::Tensor expected =
      at::cat({(1 - mask).repeat({1, 4, 1, 1, 1}), ProcessIn(Wan21LatentFormat(), image)}, 1);
  EXPECT_TRUE(at::allclose(read->y, expected, 1e-6, 1e-6));
  // Without a mask: zeros, as ComfyUI.
  auto unmasked = ReadWanConditioning(
      Write({{"text", text}, {"clip_fea", clip}, {"concat_latent_image", image}}), i2v);
  ASSERT_TRUE(unmasked.ok()) << unmasked.status();
  EXPECT_EQ(unmasked->y.slice(1, 0, 4).abs().sum().item<float>(), 0.0f);
  ExpectError({{"text", text},
               {"clip_fea", clip},
               {"concat_latent_image", image},
               {"y", at::randn({20, 3, 4, 5})}},
              i2v, "both 'y' and 'concat_latent_image'");
  ExpectError({{"text", text}, {"clip_fea", clip}, {"concat_mask", mask}}, i2v,
              "'concat_mask' without 'concat_latent_image'");
  ExpectError({{"text", text},
               {"clip_fea", clip},
               {"concat_latent_image", image},
               {"concat_mask", at::ones({1, 1, 2, 4, 5})}},
              i2v, "'concat_mask' has shape");
  ExpectError(
      {{"text", text}, {"clip_fea", clip}, {"concat_latent_image", at::randn({1, 8, 3, 4, 5})}},
      i2v, "'concat_latent_image' has 8 channels");
}

TEST_F(WanConditioningTest, BadFilesNameTheField) {
  const WanConfig t2v = *WanPreset("tiny-t2v");
  const WanConfig i2v = *WanPreset("tiny-i2v");
  const int64_t d = t2v.text_dim;
  ExpectError({{"clip_fea", at::randn({9, 40})}}, t2v, "no 'text'");
  ExpectError({{"text", at::randn({5, d + 1})}}, t2v, "'text' has shape");
  ExpectError({{"text", at::randn({WanConfig::kMaxTextTokens + 1, d})}}, t2v, "'text' has shape");
  ExpectError({{"text", at::randn({2, 5, d})}}, t2v, "expected 2 dimensions");
  ExpectError({{"text", at::full({5, d}, NAN)}}, t2v, "NaN");
  ExpectError({{"text", at::ones({5, d}, at::kInt)}}, t2v, "not a float");
  ExpectError({{"text", at::randn({5, d})}, {"pooled", at::randn({d})}}, t2v, "unknown tensors");
  ExpectError({{"text", at::randn({5, d})}, {"clip_fea", at::randn({9, 40})}}, t2v,
              "'clip_fea' is for image-to-video");
  ExpectError({{"text", at::randn({5, d})}}, i2v, "needs 'clip_fea'");
  ExpectError({{"text", at::randn({5, d})},
               {"clip_fea", at::randn({i2v.image_tokens + 1, i2v.image_dim})},
               {"y", at::randn({20, 1, 4, 4})}},
              i2v, "'clip_fea' has shape");
  ExpectError({{"text", at::randn({5, d})},
               {"clip_fea", at::randn({i2v.image_tokens, i2v.image_dim})},
               {"y", at::randn({16, 1, 4, 4})}},
              i2v, "'y' has 16 channels");
  // Not safetensors at all: the parser's error, with the path.
  const std::string junk = dir_.path() + "/junk.safetensors";
  FILE* f = fopen(junk.c_str(), "w");
  fputs("not a safetensors file", f);
  fclose(f);
  auto read = ReadWanConditioning(junk, t2v);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("junk.safetensors"), std::string::npos) << read.status();
  EXPECT_EQ(ReadWanConditioning(dir_.path() + "/missing.safetensors", t2v).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace raylight::models::wan
