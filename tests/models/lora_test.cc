// LoRA merging (models/core/lora.h) on a tiny random Wan checkpoint: every key spelling lands on
// the weight it names with ComfyUI's arithmetic (W += strength * alpha / rank * up @ down, diffs
// added), several LoRAs accumulate in order, unmatched keys are listed, and a LoRA of another
// model, DoRA and shapes that do not fit are refused naming the file and key. The merge against
// ComfyUI's own LoraLoaderModelOnly runs in the real-ComfyUI test (tests/comfyui).
#include "models/core/lora.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/lora_keys.h"
#include "models/core/safetensors_tensors.h"
#include "models/wan/wan_keys.h"
#include "models/wan/wan_loader.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/read_file.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

class LoraTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = *wan::WanPreset("tiny-t2v");
    config_.num_layers = 2;
    wan::MakeCheckpointOptions options;
    options.dtype = at::kFloat;
    options.spelling = wan::KeySpelling::kComfyUi;
    options.seed = std::random_device{}();
    path_ = testing_util::MakeCheckpoint(dir_.path(), config_, options, "base.safetensors");
    at::manual_seed(std::random_device{}());
  }

  Checkpoint Open() {
    auto opened = wan::OpenWanCheckpoint({path_});
    EXPECT_TRUE(opened.ok()) << opened.status();
    return std::move(opened->checkpoint);
  }

  at::Tensor Value(const Checkpoint& checkpoint, const std::string& name) {
    return Materialize(checkpoint.tensors.at(name), at::kFloat, at::kCPU);
  }

  std::string Write(const std::string& name, const NamedTensors& tensors) {
    const std::string path = dir_.path() + "/" + name;
    EXPECT_TRUE(WriteTensors(path, tensors).ok());
    return path;
  }

  absl::StatusOr<LoraReport> Apply(Checkpoint& checkpoint, const std::vector<LoraFile>& loras) {
    return ApplyLoras(checkpoint, loras, wan::NormalizeWanKey, at::kCPU);
  }

  testing_util::TempDir dir_{"lora"};
  wan::WanConfig config_;
  std::string path_;
};

TEST_F(LoraTest, EverySpellingMergesAsComfyUiDoes) {
  const int64_t dim = config_.dim, ffn = config_.ffn_dim, rank = 4;
  const at::Tensor q_up = at::randn({dim, rank}), q_down = at::randn({rank, dim});
  const at::Tensor f_up = at::randn({ffn, rank}), f_down = at::randn({rank, dim});
  const at::Tensor peft_a = at::randn({rank, dim}), peft_b = at::randn({dim, rank});
  const at::Tensor k_bias = at::randn({dim}), modulation = at::randn({1, 6, dim});
  const at::Tensor o_a = at::randn({rank, dim}), o_b = at::randn({dim, rank});
  // kohya / ComfyUI, with alpha; Wan Fun's doubled underscore.
  const std::string kohya =
      Write("kohya.safetensors", {{"lora_unet_blocks_0_self_attn_q.lora_up.weight", q_up},
                                  {"lora_unet_blocks_0_self_attn_q.lora_down.weight", q_down},
                                  {"lora_unet_blocks_0_self_attn_q.alpha", at::tensor(2.0)},
                                  {"lora_unet__blocks_1_ffn_0.lora_up.weight", f_up},
                                  {"lora_unet__blocks_1_ffn_0.lora_down.weight", f_down}});
  // diffusers / PEFT names on the same q (they accumulate), ComfyUI's native form with diffs of a
  // bias and of a modulation table, and a key that names nothing.
  const std::string peft = Write(
      "peft.safetensors", {{"transformer.blocks.0.attn1.to_q.lora_A.weight", peft_a},
                           {"transformer.blocks.0.attn1.to_q.lora_B.weight", peft_b},
                           {"diffusion_model.blocks.1.self_attn.o.lora_A.weight", o_a},
                           {"diffusion_model.blocks.1.self_attn.o.lora_B.weight", o_b},
                           {"diffusion_model.blocks.1.self_attn.k.diff_b", k_bias},
                           {"diffusion_model.blocks.0.modulation.diff", modulation},
                           {"diffusion_model.not_a_layer.lora_A.weight", at::randn({rank, 3})},
                           {"diffusion_model.not_a_layer.lora_B.weight", at::randn({3, rank})}});
  // The head tells these from models by their headers.
  for (const auto& [path, lora] :
       {std::pair{kohya, true}, std::pair{peft, true}, std::pair{path_, false}}) {
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(IsLoraFile((*file)->header()), lora) << path;
  }
  Checkpoint base = Open(), merged = Open();
  const double a = 0.8, b = -0.5;
  auto report = Apply(merged, {{kohya, a}, {peft, b}});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->patched_tensors, 5);
  ASSERT_EQ(report->unmatched_keys.size(), 2u) << absl::StrJoin(report->unmatched_keys, "; ");
  EXPECT_NE(report->unmatched_keys[0].find("not_a_layer"), std::string::npos);

  auto expect = [&](const std::string& name, const at::Tensor& want) {
    const at::Tensor got = Value(merged, name);
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-4) << name;
    EXPECT_GT((got - Value(base, name)).abs().max().item<double>(), 1e-3) << name << " unchanged";
  };
  expect("blocks.0.self_attn.q.weight", Value(base, "blocks.0.self_attn.q.weight") +
                                            at::mm(q_up, q_down) * (a * 2.0 / rank) +
                                            at::mm(peft_b, peft_a) * b);
  expect("blocks.1.ffn.0.weight", Value(base, "blocks.1.ffn.0.weight") + at::mm(f_up, f_down) * a);
  expect("blocks.1.self_attn.o.weight",
         Value(base, "blocks.1.self_attn.o.weight") + at::mm(o_b, o_a) * b);
  expect("blocks.1.self_attn.k.bias", Value(base, "blocks.1.self_attn.k.bias") + k_bias * b);
  expect("blocks.0.modulation", Value(base, "blocks.0.modulation") + modulation * b);
  // What no LoRA names is untouched, bit for bit.
  EXPECT_TRUE(at::equal(Value(merged, "blocks.1.self_attn.q.weight"),
                        Value(base, "blocks.1.self_attn.q.weight")));
  // Strength 0 changes nothing.
  Checkpoint zero = Open();
  ASSERT_TRUE(Apply(zero, {{kohya, 0.0}}).ok());
  EXPECT_TRUE(at::equal(Value(zero, "blocks.0.self_attn.q.weight"),
                        Value(base, "blocks.0.self_attn.q.weight")));
}

// LyCORIS LoHa and LoKr (each factor whole or as two) and DoRA (per output row and per input
// column), merged as ComfyUI's own comfy.lora computes them (tests/models/lycoris_reference.py
// runs it), at a strength below one and at one (DoRA's two branches).
TEST_F(LoraTest, LycorisAndDoraMergeAsComfyUiComputes) {
  const int64_t dim = config_.dim, ffn = config_.ffn_dim;
  auto r = [](std::vector<int64_t> shape) { return at::randn(shape) * 0.1; };
  const std::string q = "diffusion_model.blocks.0.self_attn.q";
  const std::string k = "diffusion_model.blocks.0.self_attn.k";
  const std::string v = "diffusion_model.blocks.0.self_attn.v";
  const std::string o = "diffusion_model.blocks.0.self_attn.o";
  const std::string f0 = "diffusion_model.blocks.1.ffn.0";
  const std::string f2 = "diffusion_model.blocks.1.ffn.2";
  const std::string path = Write("lycoris.safetensors",
                                 {// LoHa with alpha
                                  {q + ".hada_w1_a", r({dim, 4})},
                                  {q + ".hada_w1_b", r({4, dim})},
                                  {q + ".hada_w2_a", r({dim, 4})},
                                  {q + ".hada_w2_b", r({4, dim})},
                                  {q + ".alpha", at::tensor(2.0)},
                                  // LoKr: w1 whole, w2 as two (alpha over w2's rank)
                                  {k + ".lokr_w1", r({8, 8})},
                                  {k + ".lokr_w2_a", r({8, 2})},
                                  {k + ".lokr_w2_b", r({2, 8})},
                                  {k + ".alpha", at::tensor(1.5)},
                                  // LoKr: w1 as two (alpha over its rank), w2 whole
                                  {v + ".lokr_w1_a", r({4, 2})},
                                  {v + ".lokr_w1_b", r({2, 4})},
                                  {v + ".lokr_w2", r({16, 16})},
                                  {v + ".alpha", at::tensor(3.0)},
                                  // LoRA with DoRA per output row
                                  {o + ".lora_A.weight", r({4, dim})},
                                  {o + ".lora_B.weight", r({dim, 4})},
                                  {o + ".alpha", at::tensor(4.0)},
                                  {o + ".dora_scale", 1.0 + r({dim, 1})},
                                  // LoHa with DoRA per input column
                                  {f0 + ".hada_w1_a", r({ffn, 2})},
                                  {f0 + ".hada_w1_b", r({2, dim})},
                                  {f0 + ".hada_w2_a", r({ffn, 2})},
                                  {f0 + ".hada_w2_b", r({2, dim})},
                                  {f0 + ".dora_scale", 1.0 + r({1, dim})},
                                  // LoKr on a wide matrix, no alpha
                                  {f2 + ".lokr_w1", r({4, 8})},
                                  {f2 + ".lokr_w2", r({16, 16})}});
  Checkpoint base = Open();
  NamedTensors values;
  for (const auto& [name, tensor] : base.tensors) values.emplace_back(name, Value(base, name));
  const std::string base_values = Write("base-values.safetensors", values);
  for (double strength : {0.7, 1.0}) {
    const std::string out = dir_.path() + "/comfy.safetensors";
    const absl::Status ran = testing_util::RunToCompletion(
        {RAYLIGHT_TEST_PYTHON, RAYLIGHT_LYCORIS_REFERENCE,
         "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL, "--workdir=" RAYLIGHT_COMFYUI_WORKDIR,
         "--base=" + base_values, "--lora=" + path, "--out=" + out,
         absl::StrCat("--strength=", strength)},
        dir_.path() + "/comfy.log", std::chrono::seconds(300));
    ASSERT_TRUE(ran.ok()) << ran;
    Checkpoint checkpoint = Open();
    auto report = Apply(checkpoint, {{path, strength}});
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->patched_tensors, 6);
    EXPECT_TRUE(report->unmatched_keys.empty());
    auto expected = SafetensorsFile::Open(out);
    ASSERT_TRUE(expected.ok()) << expected.status();
    ASSERT_EQ((*expected)->header().tensors.size(), 6u);
    for (const StTensorInfo& info : (*expected)->header().tensors) {
      const at::Tensor want = *ViewTensor(*expected, info);
      const at::Tensor got = Value(checkpoint, info.name);
      EXPECT_LE((got - want).abs().max().item<double>(), 1e-6 * want.abs().max().item<double>())
          << info.name << " at strength " << strength;
      EXPECT_FALSE(at::equal(got, Value(base, info.name))) << info.name;
    }
  }
}

// Row pieces (lora_keys.h LoraRowMap): modules a LoRA names that the checkpoint stores in rows of
// other weights, as Flux's spellings fuse q, k and v differently. Parts of a weight patched by
// LoHa, LoKr, a low-rank update with DoRA (per row) and a difference equal ComfyUI's offsets
// (calculate_weight on the narrowed weight); a fused module's low-rank, LoHa and LoKr updates
// split over its parts equal ComfyUI's merge of the fused weight cut back into them
// (lycoris_reference.py --pieces). Each rank's rows of an attached patch (FSDP's shard fill)
// equal the same rows of the whole merge.
TEST_F(LoraTest, RowPiecesMergeAsComfyUisOffsetsAndShardRowsAgree) {
  auto r = [](std::vector<int64_t> shape) { return at::randn(shape) * 0.1; };
  const std::string m = "diffusion_model.";
  const LoraRowMap remapped = {
      {"blocks.0.self_attn.q.top", {{"blocks.0.self_attn.q", 0, 0, 24}}},
      {"blocks.0.self_attn.q.bottom", {{"blocks.0.self_attn.q", 0, 24, 40}}},
      {"blocks.0.self_attn.k.part", {{"blocks.0.self_attn.k", 0, 16, 32}}},
      {"blocks.0.self_attn.v.part", {{"blocks.0.self_attn.v", 0, 32, 32}}},
      {"blocks.1.self_attn.qk",
       {{"blocks.1.self_attn.q", 0, 0, 64}, {"blocks.1.self_attn.k", 64, 0, 64}}},
      {"blocks.1.cross_attn.qkv",
       {{"blocks.1.cross_attn.q", 0, 0, 64},
        {"blocks.1.cross_attn.k", 64, 0, 64},
        {"blocks.1.cross_attn.v", 128, 0, 64}}},
      {"blocks.1.self_attn.vo",
       {{"blocks.1.self_attn.v", 0, 0, 64}, {"blocks.1.self_attn.o", 64, 0, 64}}}};
  const std::string top = m + "blocks.0.self_attn.q.top",
                    bottom = m + "blocks.0.self_attn.q.bottom";
  const std::string k = m + "blocks.0.self_attn.k.part", v = m + "blocks.0.self_attn.v.part";
  const std::string qk = m + "blocks.1.self_attn.qk", qkv = m + "blocks.1.cross_attn.qkv";
  const std::string vo = m + "blocks.1.self_attn.vo";
  const std::string path = Write("pieces.safetensors", {{top + ".hada_w1_a", r({24, 2})},
                                                        {top + ".hada_w1_b", r({2, 64})},
                                                        {top + ".hada_w2_a", r({24, 2})},
                                                        {top + ".hada_w2_b", r({2, 64})},
                                                        {top + ".alpha", at::tensor(1.0)},
                                                        {bottom + ".lokr_w1", r({4, 4})},
                                                        {bottom + ".lokr_w2", r({10, 16})},
                                                        {k + ".lora_A.weight", r({3, 64})},
                                                        {k + ".lora_B.weight", r({32, 3})},
                                                        {k + ".dora_scale", 1.0 + r({32, 1})},
                                                        {v + ".diff", r({32, 64})},
                                                        {qk + ".lora_down.weight", r({3, 64})},
                                                        {qk + ".lora_up.weight", r({128, 3})},
                                                        {qk + ".alpha", at::tensor(6.0)},
                                                        {qkv + ".hada_w1_a", r({192, 2})},
                                                        {qkv + ".hada_w1_b", r({2, 64})},
                                                        {qkv + ".hada_w2_a", r({192, 2})},
                                                        {qkv + ".hada_w2_b", r({2, 64})},
                                                        {vo + ".lokr_w1", r({8, 4})},
                                                        {vo + ".lokr_w2", r({16, 16})}});
  std::string pieces = "{";
  for (const auto& [module, list] : remapped) {
    std::vector<std::string> rows;
    for (const LoraRowPiece& p : list) {
      rows.push_back(
          absl::StrCat(R"([")", p.module, R"(", )", p.from, ", ", p.into, ", ", p.count, "]"));
    }
    absl::StrAppend(&pieces, pieces.size() > 1 ? ", " : "", R"(")", m, module, R"(": [)",
                    absl::StrJoin(rows, ", "), "]");
  }
  pieces += "}";
  Checkpoint base = Open();
  NamedTensors values;
  for (const auto& [name, tensor] : base.tensors) values.emplace_back(name, Value(base, name));
  const std::string base_values = Write("base-values.safetensors", values);
  const double strength = 0.8;
  const std::string out = dir_.path() + "/comfy.safetensors";
  ASSERT_TRUE(testing_util::RunToCompletion(
                  {RAYLIGHT_TEST_PYTHON, RAYLIGHT_LYCORIS_REFERENCE,
                   "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL,
                   "--workdir=" RAYLIGHT_COMFYUI_WORKDIR, "--base=" + base_values, "--lora=" + path,
                   "--out=" + out, absl::StrCat("--strength=", strength), "--pieces=" + pieces},
                  dir_.path() + "/comfy.log", std::chrono::seconds(300))
                  .ok())
      << testing_util::ReadFileOrEmpty(dir_.path() + "/comfy.log");
  auto expected = SafetensorsFile::Open(out);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ((*expected)->header().tensors.size(), 10u);
  Checkpoint merged = Open();
  auto report = ApplyLoras(merged, {{path, strength}}, wan::NormalizeWanKey, at::kCPU,
                           /*keep_on_device=*/false, /*attach=*/false, remapped);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->patched_tensors, 10);
  EXPECT_TRUE(report->unmatched_keys.empty()) << absl::StrJoin(report->unmatched_keys, ", ");
  Checkpoint attached = Open();
  ASSERT_TRUE(ApplyLoras(attached, {{path, strength}}, wan::NormalizeWanKey, at::kCPU,
                         /*keep_on_device=*/false, /*attach=*/true, remapped)
                  .ok());
  for (const StTensorInfo& info : (*expected)->header().tensors) {
    const at::Tensor want = *ViewTensor(*expected, info);
    const at::Tensor got = Value(merged, info.name);
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-6 * want.abs().max().item<double>())
        << info.name;
    EXPECT_FALSE(at::equal(got, Value(base, info.name))) << info.name;
    // Shards that cut across the pieces' boundaries (24, 16 + 32, 64).
    for (const auto& [begin, end] : {std::pair{0, 20}, std::pair{20, 50}, std::pair{50, 64}}) {
      const at::Tensor rows =
          MaterializeRows(attached.tensors.at(info.name), begin, end, at::kFloat);
      EXPECT_LE((rows - got.narrow(0, begin, end - begin)).abs().max().item<double>(),
                1e-6 * want.abs().max().item<double>())
          << info.name << " rows " << begin << ".." << end;
    }
  }
}

// A LoRA on a scaled-fp8 base: the merged weight goes back to fp8 over its own scale with
// ComfyUI's stochastic rounding, seeded from its ComfyUI key, so the stored bytes are the ones
// ComfyUI's scaled_fp8 ops store (lycoris_reference.py runs them).
TEST_F(LoraTest, Fp8BasesAreRequantisedAsComfyUiRequantises) {
  wan::MakeCheckpointOptions options;
  options.dtype = at::kFloat8_e4m3fn;
  options.seed = std::random_device{}();
  const std::string fp8_path =
      testing_util::MakeCheckpoint(dir_.path(), config_, options, "fp8.safetensors");
  auto opened = wan::OpenWanCheckpoint({fp8_path});
  ASSERT_TRUE(opened.ok()) << opened.status();
  const int64_t dim = config_.dim;
  auto r = [](std::vector<int64_t> shape) { return (at::randn(shape) * 0.1).to(at::kBFloat16); };
  const std::string lora =
      Write("fp8-lora.safetensors",
            {{"diffusion_model.blocks.0.self_attn.q.lora_up.weight", r({dim, 4})},
             {"diffusion_model.blocks.0.self_attn.q.lora_down.weight", r({4, dim})},
             {"diffusion_model.blocks.1.ffn.2.lora_up.weight", r({dim, 4})},
             {"diffusion_model.blocks.1.ffn.2.lora_down.weight", r({4, config_.ffn_dim})}});
  // The base as the reference reads it: fp8 weights under their names, their scales beside.
  NamedTensors base;
  for (const auto& [name, tensor] : opened->checkpoint.tensors) {
    base.emplace_back(name, tensor.data);
    if (tensor.scale) {
      base.emplace_back(name.substr(0, name.size() - 7) + ".scale_weight",
                        at::full({}, *tensor.scale, at::kFloat));
    }
  }
  const std::string base_path = Write("fp8-base.safetensors", base);
  const std::string out = dir_.path() + "/fp8-comfy.safetensors";
  const absl::Status ran = testing_util::RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_LYCORIS_REFERENCE,
       "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL, "--workdir=" RAYLIGHT_COMFYUI_WORKDIR,
       "--base=" + base_path, "--lora=" + lora, "--out=" + out, "--strength=0.9"},
      dir_.path() + "/fp8-comfy.log", std::chrono::seconds(300));
  ASSERT_TRUE(ran.ok()) << ran;
  Checkpoint checkpoint = std::move(opened->checkpoint);
  auto report = Apply(checkpoint, {{lora, 0.9}});
  ASSERT_TRUE(report.ok()) << report.status();
  auto expected = SafetensorsFile::Open(out);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ((*expected)->header().tensors.size(), 2u);
  for (const StTensorInfo& info : (*expected)->header().tensors) {
    const CheckpointTensor& tensor = checkpoint.tensors.at(info.name);
    ASSERT_EQ(tensor.data.scalar_type(), at::kFloat8_e4m3fn) << info.name;
    ASSERT_TRUE(tensor.scale.has_value()) << info.name;
    const at::Tensor want = *ViewTensor(*expected, info);
    EXPECT_TRUE(at::equal(tensor.data.view(at::kByte), want.view(at::kByte))) << info.name;
  }
}

TEST_F(LoraTest, WhatCannotApplyIsRefusedNamingFileAndKey) {
  const int64_t dim = config_.dim;
  const std::string other =
      Write("flux.safetensors",
            {{"lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight", at::randn({9, 2})},
             {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", at::randn({2, 9})}});
  const std::string cp = Write(
      "cp.safetensors", {{"diffusion_model.blocks.0.self_attn.q.hada_w1_a", at::randn({2, 2})},
                         {"diffusion_model.blocks.0.self_attn.q.hada_w1_b", at::randn({2, 2})},
                         {"diffusion_model.blocks.0.self_attn.q.hada_w2_a", at::randn({2, 2})},
                         {"diffusion_model.blocks.0.self_attn.q.hada_w2_b", at::randn({2, 2})},
                         {"diffusion_model.blocks.0.self_attn.q.hada_t1", at::randn({2, 2})},
                         {"diffusion_model.blocks.0.self_attn.q.hada_t2", at::randn({2, 2})}});
  const std::string wrong =
      Write("wrong.safetensors",
            {{"diffusion_model.blocks.0.self_attn.q.lora_A.weight", at::randn({2, dim + 1})},
             {"diffusion_model.blocks.0.self_attn.q.lora_B.weight", at::randn({dim, 2})}});
  for (const auto& [path, why] :
       {std::pair{other, "another architecture"}, std::pair{cp, "hada_t1': LyCORIS's CP"},
        std::pair{wrong, "self_attn.q.lora_B.weight"},
        std::pair{dir_.path() + "/missing.safetensors", "missing"}}) {
    Checkpoint checkpoint = Open();
    auto refused = Apply(checkpoint, {{path, 1.0}});
    ASSERT_FALSE(refused.ok()) << why;
    EXPECT_NE(refused.status().message().find(why), std::string::npos) << refused.status();
  }
  Checkpoint checkpoint = Open();
  EXPECT_FALSE(Apply(checkpoint, {{wrong, NAN}}).ok());
}

// Every placement places the merged weights: a LoRA'd resident model equals one loaded from a
// checkpoint with the LoRA merged offline.
TEST_F(LoraTest, ALoadedModelEqualsTheOfflineMerge) {
  const int64_t dim = config_.dim;
  const at::Tensor up = at::randn({dim, 3}), down = at::randn({3, dim});
  const std::string lora = Write("q.safetensors", {{"blocks.1.cross_attn.v.lora_B.weight", up},
                                                   {"blocks.1.cross_attn.v.lora_A.weight", down}});
  PlacementOptions options;
  auto loaded = wan::LoadWanResident({path_}, options, {{lora, 0.7}});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto block = loaded->weights->Acquire(1);
  ASSERT_TRUE(block.ok());
  Checkpoint base = Open();
  const at::Tensor want = Value(base, "blocks.1.cross_attn.v.weight") + at::mm(up, down) * 0.7;
  EXPECT_LT(((*block)->Get("cross_attn.v.weight") - want).abs().max().item<double>(), 1e-4);
  loaded->weights->Release(1);
}

}  // namespace
}  // namespace raylight::models
