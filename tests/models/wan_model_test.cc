// Wan on CPU in fp32: key spellings, checkpoint validation, config detection, RoPE and the
// timestep embedding against direct computations, forward determinism, input errors, fp8.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "absl/strings/match.h"
#include "models/core/block_subset.h"
#include "models/core/fp8_linear.h"
#include "models/core/safetensors_tensors.h"
#include "models/core/tea_cache.h"
#include "models/wan/wan_keys.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_rope.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::wan {
namespace {

using testing_util::LatentSize;
using testing_util::RandomWanInputs;
using testing_util::RelativeL2;

MakeCheckpointOptions F32(KeySpelling spelling = KeySpelling::kOfficial, uint64_t seed = 7) {
  MakeCheckpointOptions options;
  options.dtype = at::kFloat;
  options.spelling = spelling;
  options.seed = seed;
  return options;
}

at::Tensor Forward(const std::string& path, const WanInputs& inputs) {
  auto loaded = LoadWanResident({path}, PlacementOptions{});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  auto out = WanForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  EXPECT_TRUE(out.ok()) << out.status();
  return *out;
}

TEST(WanKeysTest, EverySpellingNormalisesToTheInternalName) {
  for (const char* preset : {"tiny-t2v", "tiny-i2v", "tiny-ti2v"}) {
    WanConfig config = *WanPreset(preset);
    for (const auto& [name, shape] : WanWeightShapes(config)) {
      EXPECT_EQ(NormalizeWanKey(name), name);
      EXPECT_EQ(NormalizeWanKey("model.diffusion_model." + name), name);
      EXPECT_EQ(NormalizeWanKey(ToDiffusersKey(name)), name) << ToDiffusersKey(name);
    }
  }
  EXPECT_EQ(NormalizeWanKey("blocks.3.attn1.to_out.0.weight"), "blocks.3.self_attn.o.weight");
  EXPECT_EQ(NormalizeWanKey("blocks.0.attn2.add_k_proj.bias"), "blocks.0.cross_attn.k_img.bias");
  EXPECT_EQ(NormalizeWanKey("blocks.1.norm2.weight"), "blocks.1.norm3.weight");
  EXPECT_EQ(NormalizeWanKey("blocks.1.ffn.net.0.proj.weight"), "blocks.1.ffn.0.weight");
  EXPECT_EQ(NormalizeWanKey("blocks.2.scale_shift_table"), "blocks.2.modulation");
  EXPECT_EQ(NormalizeWanKey("scale_shift_table"), "head.modulation");
  EXPECT_EQ(NormalizeWanKey("condition_embedder.time_proj.weight"), "time_projection.1.weight");
  EXPECT_EQ(NormalizeWanKey("proj_out.bias"), "head.head.bias");
  EXPECT_EQ(NormalizeWanKey("first_stage_model.decoder.conv_in.weight"), std::nullopt);
  EXPECT_EQ(NormalizeWanKey("blocks.x.self_attn.q.weight"), std::nullopt);
  EXPECT_EQ(NormalizeWanKey("blocks.0.self_attn.qq.weight"), std::nullopt);
}

TEST(WanKeysTest, ThreeSpellingsLoadToTheSameModel) {
  testing_util::TempDir dir("wan-keys");
  WanConfig config = *WanPreset("tiny-i2v");
  WanInputs inputs = RandomWanInputs(config, LatentSize{});
  at::Tensor official = Forward(
      testing_util::MakeCheckpoint(dir.path(), config, F32(KeySpelling::kOfficial), "o"), inputs);
  at::Tensor comfy = Forward(
      testing_util::MakeCheckpoint(dir.path(), config, F32(KeySpelling::kComfyUi), "c"), inputs);
  at::Tensor diffusers = Forward(
      testing_util::MakeCheckpoint(dir.path(), config, F32(KeySpelling::kDiffusers), "d"), inputs);
  // Same values; only the file layout (hence the alignment the CPU kernels see) differs.
  EXPECT_LT(RelativeL2(comfy, official), 1e-6);
  EXPECT_LT(RelativeL2(diffusers, official), 1e-6);
}

TEST(WanKeysTest, DetectionFindsFamilyPresetAndLayers) {
  testing_util::TempDir dir("wan-detect");
  for (const char* preset : {"tiny-t2v", "tiny-i2v", "tiny-ti2v"}) {
    WanConfig config = *WanPreset(preset);
    config.num_layers = 1;
    auto opened =
        OpenWanCheckpoint({testing_util::MakeCheckpoint(dir.path(), config, F32(), preset)});
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->config.name, preset);
    EXPECT_EQ(opened->config.family, config.family);
    EXPECT_EQ(opened->config.num_layers, 1);
    EXPECT_EQ(opened->config.num_heads, config.num_heads);
    EXPECT_EQ(opened->config.in_channels, config.in_channels);
  }
  // Real 1.3B sizes, one block (bf16 keeps the file small): the preset is recognised.
  WanConfig real = *WanPreset("wan2.1-t2v-1.3b");
  real.num_layers = 1;
  MakeCheckpointOptions bf16;
  auto opened = OpenWanCheckpoint({testing_util::MakeCheckpoint(dir.path(), real, bf16, "real")});
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->config.name, "wan2.1-t2v-1.3b");
  EXPECT_EQ(opened->config.num_heads, 12);
}

// Rewrites a checkpoint through `edit` (which may drop, add or change tensors).
std::string Edited(const std::string& dir, const std::string& source, const std::string& name,
                   const std::function<void(NamedTensors&)>& edit) {
  auto file = SafetensorsFile::Open(source);
  NamedTensors tensors;
  for (const auto& info : (*file)->header().tensors)
    tensors.emplace_back(info.name, ViewTensor(*file, info)->clone());
  edit(tensors);
  const std::string path = dir + "/" + name + ".safetensors";
  EXPECT_TRUE(WriteTensors(path, tensors, (*file)->header().metadata).ok());
  return path;
}

TEST(WanKeysTest, IncompleteOrWrongCheckpointsSayWhatIsWrong) {
  testing_util::TempDir dir("wan-bad");
  WanConfig config = *WanPreset("tiny-t2v");
  const std::string good =
      testing_util::MakeCheckpoint(dir.path(), config, F32(KeySpelling::kComfyUi), "good");
  auto expect = [&](const std::string& path, const std::vector<std::string>& needles) {
    auto opened = OpenWanCheckpoint({path});
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
    for (const auto& needle : needles) {
      EXPECT_NE(opened.status().message().find(needle), std::string::npos) << opened.status();
    }
  };
  expect(Edited(dir.path(), good, "missing",
                [](NamedTensors& t) {
                  std::erase_if(t, [](const auto& p) {
                    return p.first.ends_with("blocks.1.cross_attn.k.weight");
                  });
                }),
         {"missing keys", "blocks.1.cross_attn.k.weight"});
  expect(Edited(dir.path(), good, "extra",
                [](NamedTensors& t) {
                  t.emplace_back("model.diffusion_model.blocks.0.lora_up.weight", at::randn({2}));
                }),
         {"extra keys", "blocks.0.lora_up.weight"});
  expect(Edited(dir.path(), good, "shape",
                [](NamedTensors& t) {
                  for (auto& [name, tensor] : t) {
                    if (name.ends_with("blocks.0.ffn.2.weight")) tensor = at::randn({64, 100});
                  }
                }),
         {"wrong shapes", "blocks.0.ffn.2.weight is [64, 100], expected [64, 128]"});
  expect(Edited(dir.path(), good, "vae",
                [](NamedTensors& t) {
                  t.clear();
                  t.emplace_back("decoder.conv_in.weight", at::randn({4}));
                }),
         {"not a Wan transformer checkpoint", "patch_embedding.weight", "decoder.conv_in.weight"});
  auto missing_file = OpenWanCheckpoint({dir.path() + "/nope.safetensors"});
  EXPECT_EQ(missing_file.status().code(), absl::StatusCode::kNotFound);
}

// ComfyUI's unscaled fp8 files (wan2.1_t2v_*_fp8_e4m3fn: every block matrix float8_e4m3fn, no
// scale_weight) load as their values: the forward equals the one of the same values stored fp32.
TEST(WanKeysTest, UnscaledFp8WeightsLoadAsTheirValues) {
  testing_util::TempDir dir("wan-fp8");
  const WanConfig config = *WanPreset("tiny-t2v");
  const std::string good =
      testing_util::MakeCheckpoint(dir.path(), config, F32(KeySpelling::kComfyUi), "good");
  auto to_fp8 = [](at::ScalarType stored) {
    return [stored](NamedTensors& t) {
      for (auto& [name, tensor] : t) {
        if (name.find(".blocks.") != std::string::npos && tensor.dim() == 2) {
          tensor = tensor.to(at::kFloat8_e4m3fn).to(stored);
        }
      }
    };
  };
  const std::string fp8 = Edited(dir.path(), good, "fp8", to_fp8(at::kFloat8_e4m3fn));
  const std::string values = Edited(dir.path(), good, "values", to_fp8(at::kFloat));
  const WanInputs inputs = RandomWanInputs(config, LatentSize{});
  // The same values; the GEMMs may round differently on the file's mapped (unaligned) fp32 rows
  // than on a fresh copy (this AMD EPYC's kernels do: see gguf_test).
  const double error = testing_util::RelativeL2(Forward(fp8, inputs), Forward(values, inputs));
  EXPECT_LT(error, 1e-6);
}

TEST(WanRopeTest, MatchesADirectPerPositionComputation) {
  const int64_t frames = 3, height = 4, width = 5, head_dim = 32, heads = 2;
  RopeTable table = MakeRopeTable(frames, height, width, head_dim, at::kCPU);
  at::manual_seed(std::random_device{}());
  at::Tensor x = at::randn({1, frames * height * width, heads, head_dim}, at::kDouble);
  at::Tensor rotated = ApplyRope(x.to(at::kFloat), table).to(at::kDouble);
  // Axis split for d = 32: t gets 32 - 4*5 = 12 dims, h and w 10 each; pairs rotate by
  // position * 10000^(-2i/D_axis).
  const int64_t dims[3] = {12, 10, 10};
  for (int64_t f = 0; f < frames; ++f) {
    for (int64_t h = 0; h < height; ++h) {
      for (int64_t w = 0; w < width; ++w) {
        const int64_t token = (f * height + h) * width + w;
        const int64_t pos[3] = {f, h, w};
        int64_t pair = 0;
        for (int axis = 0; axis < 3; ++axis) {
          for (int64_t i = 0; i < dims[axis] / 2; ++i, ++pair) {
            const double angle = pos[axis] * std::pow(10000.0, -2.0 * i / dims[axis]);
            for (int64_t head = 0; head < heads; ++head) {
              const double a = x[0][token][head][2 * pair].item<double>();
              const double b = x[0][token][head][2 * pair + 1].item<double>();
              EXPECT_NEAR(rotated[0][token][head][2 * pair].item<double>(),
                          a * std::cos(angle) - b * std::sin(angle), 1e-5);
              EXPECT_NEAR(rotated[0][token][head][2 * pair + 1].item<double>(),
                          a * std::sin(angle) + b * std::cos(angle), 1e-5);
            }
          }
        }
      }
    }
  }
}

TEST(WanModelTest, SinusoidalEmbeddingIsCosThenSin) {
  at::Tensor t = at::tensor({0.0, 1.0, 999.0}, at::kDouble);
  at::Tensor e = SinusoidalEmbedding(t, 256);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, 256}));
  for (int64_t i : {0, 1, 64, 127}) {
    const double freq = std::pow(10000.0, -static_cast<double>(i) / 128);
    EXPECT_NEAR(e[2][i].item<double>(), std::cos(999.0 * freq), 1e-12);
    EXPECT_NEAR(e[2][128 + i].item<double>(), std::sin(999.0 * freq), 1e-12);
  }
}

TEST(WanModelTest, TinyForwardIsDeterministicAndShaped) {
  testing_util::TempDir dir("wan-tiny");
  for (const char* preset : {"tiny-t2v", "tiny-i2v", "tiny-ti2v"}) {
    WanConfig config = *WanPreset(preset);
    const std::string path = testing_util::MakeCheckpoint(dir.path(), config, F32(), preset);
    LatentSize size;
    size.batch = 2;
    WanInputs inputs = RandomWanInputs(config, size);
    at::Tensor a = Forward(path, inputs);
    at::Tensor b = Forward(path, inputs);
    EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, config.out_channels, 3, 8, 12})) << preset;
    EXPECT_EQ(a.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(a, b)) << preset;
    EXPECT_TRUE(at::isfinite(a).all().item<bool>());
    EXPECT_GT(a.std().item<double>(), 0.01);
    // The batch items are independent: item 1 alone gives the same answer.
    WanInputs one = inputs;
    one.x = inputs.x.slice(0, 1, 2);
    one.t = inputs.t.slice(0, 1, 2);
    one.context = inputs.context.slice(0, 1, 2);
    if (config.i2v()) {
      one.y = inputs.y.slice(0, 1, 2);
      one.clip_fea = inputs.clip_fea.slice(0, 1, 2);
    }
    EXPECT_LT(RelativeL2(Forward(path, one), a.slice(0, 1, 2)), 1e-5) << preset;
    // A different timestep changes the answer.
    WanInputs later = inputs;
    later.t = inputs.t + 100;
    EXPECT_GT(RelativeL2(Forward(path, later), a), 1e-3) << preset;
  }
}

TEST(WanModelTest, AWarmUpRunsBlockZeroAloneAndLeavesLaterForwardsAsTheyWere) {
  testing_util::TempDir dir("wan-warm-up");
  const WanConfig config = *WanPreset("tiny-t2v");
  const std::string path = testing_util::MakeCheckpoint(dir.path(), config, F32(), "tiny");
  auto loaded = LoadWanResident({path}, PlacementOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_GE(loaded->weights->num_blocks(), 2);
  // The view shows block 1 of the model as its block 0, and nothing past it.
  BlockSubset second(*loaded->weights, {1});
  EXPECT_EQ(second.num_blocks(), 1);
  auto viewed = second.Acquire(0);
  auto direct = loaded->weights->Acquire(1);
  ASSERT_TRUE(viewed.ok() && direct.ok());
  EXPECT_EQ(*viewed, *direct);
  second.Release(0);
  loaded->weights->Release(1);
  EXPECT_EQ(second.Acquire(1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(second.globals().tensors().size(), loaded->weights->globals().tensors().size());

  const WanInputs inputs = RandomWanInputs(config, LatentSize{});
  auto before = WanForward(config, inputs, ParallelContext{}, *loaded->weights);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(WarmUpWanForward(config, inputs, ParallelContext{}, *loaded->weights).ok());
  auto after = WanForward(config, inputs, ParallelContext{}, *loaded->weights);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(at::equal(*before, *after));
  // Block 0 alone is a different network: the warm-up ran one block, not the model.
  WanConfig one_block = config;
  one_block.num_layers = 1;
  BlockSubset first(*loaded->weights, {0});
  auto shallow = WanForward(one_block, inputs, ParallelContext{}, first);
  ASSERT_TRUE(shallow.ok()) << shallow.status();
  EXPECT_GT(RelativeL2(*shallow, *before), 1e-3);
  // Inputs that name a step cache leave it untouched.
  WanStepCache cache(
      std::make_unique<TeaCachePolicy>(TeaCacheSettings{.threshold = 0.5, .coefficients = {1, 0}}),
      /*modulation_e0=*/true);
  WanInputs cached = inputs;
  cached.step_cache = &cache;
  ASSERT_TRUE(WarmUpWanForward(config, cached, ParallelContext{}, *loaded->weights).ok());
  EXPECT_FALSE(cache.residual.defined());
  EXPECT_FALSE(cache.previous.defined());
}

TEST(WanModelTest, CondAndUncondInOneBatchGiveTheTwoSeparateForwards) {
  testing_util::TempDir dir("wan-batch");
  for (const char* preset : {"tiny-t2v", "tiny-i2v", "tiny-ti2v"}) {
    WanConfig config = *WanPreset(preset);
    const std::string path = testing_util::MakeCheckpoint(dir.path(), config, F32(), preset);
    WanInputs cond = RandomWanInputs(config, LatentSize{});
    // The negative prompt: another text of another length, everything else the same.
    WanInputs uncond = cond;
    uncond.context = at::randn({1, cond.context.size(1) + 3, config.text_dim});
    const WanInputs both = BatchInputs(cond, uncond);
    ASSERT_EQ(both.x.size(0), 2) << preset;
    ASSERT_EQ(both.context.size(1), uncond.context.size(1)) << preset;
    const at::Tensor batched = Forward(path, both);
    const at::Tensor first = Forward(path, cond), second = Forward(path, uncond);
    EXPECT_LT((batched[0] - first[0]).abs().max().item<double>(), 1e-5) << preset;
    EXPECT_LT((batched[1] - second[0]).abs().max().item<double>(), 1e-5) << preset;
    EXPECT_GT(RelativeL2(first, second), 1e-3) << preset;  // the prompts really differ
  }
}

TEST(WanModelTest, TextsPastTextLenAreTakenWholeAndBatchOnlyWhereExact) {
  // ComfyUI's umT5 hands over more than text_len rows for a long prompt, and its Wan takes them
  // all; padded further they would gain keys, so such pairs batch only at equal padded lengths.
  testing_util::TempDir dir("wan-long-text");
  WanConfig config = *WanPreset("tiny-t2v");
  const std::string path = testing_util::MakeCheckpoint(dir.path(), config, F32(), "m");
  WanInputs longer = RandomWanInputs(config, LatentSize{});
  longer.context = at::randn({1, config.text_len + 40, config.text_dim});
  WanInputs truncated = longer;
  truncated.context = longer.context.slice(1, 0, config.text_len);
  EXPECT_GT(RelativeL2(Forward(path, longer), Forward(path, truncated)), 1e-4);
  EXPECT_TRUE(TextsBatchExactly(config, 7, config.text_len));
  EXPECT_TRUE(TextsBatchExactly(config, config.text_len + 40, config.text_len + 40));
  EXPECT_FALSE(TextsBatchExactly(config, config.text_len + 40, config.text_len));
  WanInputs too_long = longer;
  too_long.context = at::randn({1, WanConfig::kMaxTextTokens + 1, config.text_dim});
  auto loaded = LoadWanResident({path}, {});
  ASSERT_TRUE(loaded.ok());
  auto refused = WanForward(loaded->config, too_long, ParallelContext{}, *loaded->weights);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StartsWith(refused.status().message(), "context:")) << refused.status();
}

TEST(WanModelTest, BadInputsAreRefusedNamingTheField) {
  testing_util::TempDir dir("wan-inputs");
  WanConfig config = *WanPreset("tiny-i2v");
  auto loaded = LoadWanResident({testing_util::MakeCheckpoint(dir.path(), config, F32(), "m")}, {});
  ASSERT_TRUE(loaded.ok());
  const WanInputs good = RandomWanInputs(config, LatentSize{});
  auto expect = [&](const std::function<void(WanInputs&)>& edit, const std::string& field) {
    WanInputs in = good;
    edit(in);
    auto out = WanForward(loaded->config, in, ParallelContext{}, *loaded->weights);
    ASSERT_FALSE(out.ok()) << field;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(out.status().message().substr(0, field.size() + 1), field + ":") << out.status();
  };
  expect([](WanInputs& in) { in.x = in.x.slice(1, 0, 15); }, "x");
  expect(
      [](WanInputs& in) {
        in.x = in.x.slice(3, 0, 7);
        in.y = in.y.slice(3, 0, 7);
      },
      "x");
  expect([](WanInputs& in) { in.y = in.y.slice(4, 0, 10); }, "y");
  expect([](WanInputs& in) { in.t = at::rand({2}); }, "t");
  expect([](WanInputs& in) { in.t = at::rand({1, 72}); }, "t");
  expect(
      [](WanInputs& in) {
        in.context = at::randn({1, WanConfig::kMaxTextTokens + 1, 48});
      },
      "context");
  expect([](WanInputs& in) { in.context = at::randn({1, 20, 47}); }, "context");
  expect([](WanInputs& in) { in.clip_fea = at::Tensor(); }, "clip_fea");
  expect(
      [](WanInputs& in) {
        in.x = in.x.clone();
        in.x[0][0][0][0][0] = NAN;
      },
      "x");
  expect(
      [](WanInputs& in) {  // 2M tokens: refused before anything is allocated
        in.x = at::randn({1, 16, 1, 1, 1}).expand({1, 16, 2000, 64, 64});
        in.y = at::randn({1, 20, 1, 1, 1}).expand({1, 20, 2000, 64, 64});
      },
      "x");
  // A sequence-parallel context without its communicators: a clear error, not a wrong answer.
  ParallelContext sp;
  sp.ulysses_degree = 2;
  auto out = WanForward(loaded->config, good, sp, *loaded->weights);
  EXPECT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("without a ulysses communicator"), std::string::npos)
      << out.status();
}

TEST(WanModelTest, Fp8ScaledCheckpointStaysCloseToFullPrecision) {
  testing_util::TempDir dir("wan-fp8");
  WanConfig config = *WanPreset("tiny-t2v");
  MakeCheckpointOptions fp8 = F32();
  fp8.dtype = at::kFloat8_e4m3fn;
  const std::string full = testing_util::MakeCheckpoint(dir.path(), config, F32(), "full");
  const std::string quantized = testing_util::MakeCheckpoint(dir.path(), config, fp8, "fp8");
  auto loaded = LoadWanResident({quantized}, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // fp8 stays fp8 in memory: the block matrices take one byte per value.
  auto* resident = dynamic_cast<ResidentWeights*>(loaded->weights.get());
  ASSERT_NE(resident, nullptr);
  auto full_loaded = LoadWanResident({full}, {});
  EXPECT_LT(resident->resident_bytes(),
            full_loaded->weights->globals().bytes() +
                (dynamic_cast<ResidentWeights*>(full_loaded->weights.get())->resident_bytes() -
                 full_loaded->weights->globals().bytes()) /
                    2);
  WanInputs inputs = RandomWanInputs(config, LatentSize{});
  // e4m3 keeps 3 mantissa bits: ~2% error per weight; the documented bound for the whole
  // forward is 10% relative L2.
  const double error = RelativeL2(Forward(quantized, inputs), Forward(full, inputs));
  EXPECT_LT(error, 0.10);
  EXPECT_GT(error, 1e-4);  // it really is the quantised model
}

// fp8 compute (a job's `compute: fp8`): every block linear held as e4m3 with a scale per output
// channel and multiplied with per-token-scaled e4m3 activations (fp8_linear.h). On the CPU the
// products are the GPU's up to summation order, so this bounds what the H200 computes too.
at::Tensor Fp8ComputeForward(const std::string& path, const WanInputs& inputs,
                             int64_t* block_bytes) {
  PlacementOptions options;
  options.fp8_compute = true;
  auto loaded = LoadWanResident({path}, options);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return {};
  auto block = loaded->weights->Acquire(0);
  EXPECT_TRUE(block.ok());
  for (const char* name : {"self_attn.q.weight", "cross_attn.o.weight", "ffn.0.weight"}) {
    EXPECT_EQ((*block)->Get(name).scalar_type(), at::kFloat8_e4m3fn) << name;
    EXPECT_EQ((*block)->Get(Fp8ScaleName(name)).sizes()[0], (*block)->Get(name).size(0)) << name;
  }
  EXPECT_EQ((*block)->Get("norm3.weight").scalar_type(), at::kFloat);  // not a linear
  *block_bytes = (*block)->bytes();
  loaded->weights->Release(0);
  auto out = WanForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : at::Tensor();
}

TEST(WanModelTest, Fp8ComputeStaysWithinItsBoundOfFullPrecision) {
  testing_util::TempDir dir("wan-fp8-compute");
  for (const char* preset : {"tiny-t2v", "tiny-i2v"}) {
    WanConfig config = *WanPreset(preset);
    const std::string full = testing_util::MakeCheckpoint(
        dir.path(), config, F32(KeySpelling::kOfficial, std::random_device{}()), preset);
    const WanInputs inputs = RandomWanInputs(config, LatentSize{});
    int64_t fp8_bytes = 0;
    const at::Tensor fp8 = Fp8ComputeForward(full, inputs, &fp8_bytes);
    ASSERT_TRUE(fp8.defined());
    auto loaded = LoadWanResident({full}, {});
    ASSERT_TRUE(loaded.ok());
    // A byte a value instead of four (the scales and the norms add a little).
    EXPECT_LT(fp8_bytes, (*loaded->weights->Acquire(0))->bytes() / 3) << preset;
    // Each linear's operands carry 3 mantissa bits (~4-5% per layer, fp8_linear.h); the
    // forward's documented bound is 10% relative L2, as for fp8-scaled weights alone.
    const double error = RelativeL2(fp8, Forward(full, inputs));
    std::printf("%s: fp8 compute vs fp32, relative L2 %.4g\n", preset, error);
    EXPECT_LT(error, 0.10) << preset;
    EXPECT_GT(error, 1e-3) << preset;  // it really is computed in fp8
  }
}

// An fp8-scaled checkpoint's e4m3 bytes are the fp8 GEMMs' weights as stored (its scale per
// tensor repeated per row), not quantised a second time.
TEST(WanModelTest, Fp8ComputeUsesAScaledCheckpointsOwnBytes) {
  testing_util::TempDir dir("wan-fp8-compute");
  WanConfig config = *WanPreset("tiny-t2v");
  MakeCheckpointOptions fp8 = F32(KeySpelling::kOfficial, std::random_device{}());
  fp8.dtype = at::kFloat8_e4m3fn;
  const std::string path = testing_util::MakeCheckpoint(dir.path(), config, fp8, "fp8");
  auto stored = testing_util::ReadTensors(path);
  ASSERT_TRUE(stored.ok()) << stored.status();
  PlacementOptions options;
  options.fp8_compute = true;
  auto loaded = LoadWanResident({path}, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto block = loaded->weights->Acquire(1);
  ASSERT_TRUE(block.ok());
  const at::Tensor& weight = (*block)->Get("ffn.2.weight");
  const at::Tensor& file = stored->at("blocks.1.ffn.2.weight");
  ASSERT_EQ(weight.scalar_type(), at::kFloat8_e4m3fn);
  EXPECT_TRUE(at::equal(weight.view(at::kByte), file.view(at::kByte)));
  const float scale = stored->at("blocks.1.ffn.2.scale_weight").item<float>();
  EXPECT_TRUE(at::equal((*block)->Get("ffn.2.weight_scale"), at::full({weight.size(0)}, scale)));
  loaded->weights->Release(1);
  const WanInputs inputs = RandomWanInputs(config, LatentSize{});
  auto out = WanForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  ASSERT_TRUE(out.ok()) << out.status();
  // Against the same weights dequantised (only the activations' rounding differs).
  const double error = RelativeL2(*out, Forward(path, inputs));
  EXPECT_LT(error, 0.10);
  EXPECT_GT(error, 1e-4);
}

}  // namespace
}  // namespace raylight::models::wan
