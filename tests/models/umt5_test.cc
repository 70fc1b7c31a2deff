// The umT5 text encoder against outside references (umt5_reference.py): the tokenizer against
// Python's `sentencepiece` on a model trained in the test (stored as a file and inside the
// encoder's safetensors), the encoder against transformers' UMT5EncoderModel on random weights
// (small and real head sizes, both key spellings, fp8-scaled, masks of unequal lengths), and
// the prompt -> conditioning path against ComfyUI's own (weights syntax, CJK, long prompts).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/safetensors_tensors.h"
#include "models/text/prompt_weights.h"
#include "models/text/sentencepiece_tokenizer.h"
#include "models/text/umt5_encoder.h"
#include "models/text/umt5_tokens.h"
#include "models/wan/wan_checkpoint_maker.h"
#include "nlohmann/json.hpp"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::text {
namespace {

using testing_util::RelativeL2;

constexpr const char* kWords[] = {"a",    "red",    "fox",  "runs",   "in",     "the",
                                  "snow", "under",  "pale", "winter", "sky",    "cinematic",
                                  "slow", "motion", "wide", "shot",   "camera", "dawn",
                                  "一只", "狐狸",   "雪中", "，",     "。",     "（慢动作）"};

std::string RandomText(std::mt19937_64& random, int words) {
  std::vector<std::string> picked;
  for (int i = 0; i < words; ++i) picked.push_back(kWords[random() % std::size(kWords)]);
  return absl::StrJoin(picked, " ");
}

using testing_util::ReadTensors;

void WriteJson(const std::string& path, const nlohmann::json& value) {
  std::ofstream(path) << value.dump();
}

class Umt5Test : public testing::Test {
 protected:
  // One trained tokenizer for the suite (training takes a second; the model files differ).
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("umt5");
    std::mt19937_64 random(std::random_device{}());
    texts_ = new std::vector<std::string>{"a red fox in the snow", "一只红色的狐狸，在雪中。",
                                          "（慢动作） cinematic!!", "  two  spaces ", ""};
    for (int i = 0; i < 6; ++i) texts_->push_back(RandomText(random, 3 + i * 5));
    WriteJson(dir_->path() + "/texts.json", *texts_);
    ASSERT_TRUE(
        Run({"tokenizer", "--out-dir=" + dir_->path(), "--texts=" + dir_->path() + "/texts.json"},
            "tokenizer")
            .ok());
  }
  static void TearDownTestSuite() {
    delete texts_;
    delete dir_;
  }

  static absl::Status Run(std::vector<std::string> args, const std::string& log) {
    args.insert(args.begin(), {RAYLIGHT_TEST_PYTHON, RAYLIGHT_UMT5_REFERENCE});
    return testing_util::RunToCompletion(args, dir_->path() + "/" + log + ".log",
                                         std::chrono::seconds(600));
  }

  static std::string Spiece() { return dir_->path() + "/spiece.model"; }

  // A random encoder written by the reference, and what transformers computes with it.
  struct Made {
    std::string model;
    at::Tensor ids, mask, hidden;
  };
  static Made MakeModel(const nlohmann::json& config, const std::string& name,
                        const std::vector<std::string>& options) {
    const std::string sub = dir_->path() + "/" + name;
    std::filesystem::create_directories(sub);
    WriteJson(sub + "/config.json", config);
    Made made;
    made.model = sub + "/encoder.safetensors";
    std::vector<std::string> args = {"model",
                                     "--config=" + sub + "/config.json",
                                     absl::StrCat("--seed=", std::random_device{}() % 100000),
                                     "--spiece=" + Spiece(),
                                     "--out=" + made.model,
                                     "--expected=" + sub + "/expected.safetensors"};
    args.insert(args.end(), options.begin(), options.end());
    const absl::Status ran = Run(args, name);
    EXPECT_TRUE(ran.ok()) << ran;
    auto expected = ReadTensors(sub + "/expected.safetensors");
    EXPECT_TRUE(expected.ok()) << expected.status();
    if (!expected.ok()) return made;
    made.ids = expected->at("ids");
    made.mask = expected->at("mask");
    made.hidden = expected->at("hidden");
    return made;
  }

  static nlohmann::json SmallConfig() {
    return {{"vocab", 300},   {"dim", 64}, {"heads", 4},
            {"head_dim", 16}, {"ffn", 96}, {"layers", 3}};
  }

  static absl::StatusOr<std::unique_ptr<Umt5Encoder>> Load(const std::string& path) {
    Umt5LoadOptions options;
    options.placement.device = at::kCPU;
    options.placement.compute_dtype = at::kFloat;
    return Umt5Encoder::Load({path}, options);
  }

  static void ExpectEqualsTransformers(const Made& made) {
    auto encoder = Load(made.model);
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    auto hidden = (*encoder)->Forward(made.ids, made.mask);
    ASSERT_TRUE(hidden.ok()) << hidden.status();
    EXPECT_LT(RelativeL2(*hidden, made.hidden), 1e-5);
    // The shorter row alone: its masked tail changes nothing the mask lets through.
    const int64_t length = made.mask[1].sum().item<int64_t>();
    auto alone = (*encoder)->Forward(made.ids.narrow(0, 1, 1).narrow(1, 0, length),
                                     made.mask.narrow(0, 1, 1).narrow(1, 0, length));
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_LT(RelativeL2(*alone, made.hidden.narrow(0, 1, 1).narrow(1, 0, length)), 1e-5);
  }

  static testing_util::TempDir* dir_;
  static std::vector<std::string>* texts_;
};
testing_util::TempDir* Umt5Test::dir_ = nullptr;
std::vector<std::string>* Umt5Test::texts_ = nullptr;

TEST_F(Umt5Test, TokenizerGivesSentencePiecesIdsFromAFileAndFromBytes) {
  std::ifstream ids_file(dir_->path() + "/ids.json");
  const nlohmann::json expected = nlohmann::json::parse(ids_file);
  auto from_file = SentencePieceTokenizer::FromFile(Spiece());
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  std::ifstream model(Spiece(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(model)), {});
  auto from_bytes = SentencePieceTokenizer::FromSerialized(bytes, "bytes");
  ASSERT_TRUE(from_bytes.ok()) << from_bytes.status();
  EXPECT_EQ((*from_file)->eos_id(), 1);
  EXPECT_EQ((*from_file)->pad_id(), 0);
  for (size_t i = 0; i < texts_->size(); ++i) {
    const std::vector<int> want = expected[i].get<std::vector<int>>();
    EXPECT_EQ(*(*from_file)->Encode((*texts_)[i]), want) << (*texts_)[i];
    EXPECT_EQ(*(*from_bytes)->Encode((*texts_)[i]), want) << (*texts_)[i];
  }
  auto garbage = SentencePieceTokenizer::FromSerialized("not a model", "garbage.bin");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("garbage.bin"), std::string::npos);
}

TEST_F(Umt5Test, EncoderEqualsTransformersWithComfyUiNames) {
  ExpectEqualsTransformers(MakeModel(SmallConfig(), "hf", {"--spelling=hf"}));
}

TEST_F(Umt5Test, EncoderEqualsTransformersWithWanNamesAndATokenizerBeside) {
  const Made made = MakeModel(SmallConfig(), "wan", {"--spelling=wan"});
  // The official names carry no tokenizer: without one beside the weights the load names both
  // places it looked.
  auto missing = Load(made.model);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("spiece.model"), std::string::npos) << missing.status();
  std::filesystem::copy_file(Spiece(),
                             std::filesystem::path(made.model).parent_path() / "spiece.model");
  ExpectEqualsTransformers(made);
}

// T5 v1.1 (Flux's and Chroma's T5-XXL) differs from umT5 in one thing: block 0's position-bias
// table serves every layer. The file has that one table, and the load detects it.
TEST_F(Umt5Test, EncoderEqualsTransformersT5WithOneSharedPositionBias) {
  const Made made = MakeModel(SmallConfig(), "t5", {"--spelling=hf", "--t5"});
  auto encoder = Load(made.model);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  EXPECT_FALSE((*encoder)->config().bias_per_layer);
  ExpectEqualsTransformers(made);
  // umT5's files have a table per layer.
  auto umt5 = Load(MakeModel(SmallConfig(), "umt5-bias", {"--spelling=hf"}).model);
  ASSERT_TRUE(umt5.ok()) << umt5.status();
  EXPECT_TRUE((*umt5)->config().bias_per_layer);
}

TEST_F(Umt5Test, Fp8ScaledWeightsAreDequantisedPerLayer) {
  const Made made = MakeModel(SmallConfig(), "fp8", {"--spelling=hf", "--fp8"});
  ExpectEqualsTransformers(made);
  // The blocks stay fp8 where they are placed.
  auto encoder = Load(made.model);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  auto block = (*encoder)->weights().Acquire(0);
  ASSERT_TRUE(block.ok());
  EXPECT_EQ((*block)->Get("attn.q.weight").scalar_type(), at::kFloat);  // dequantised on acquire
  (*encoder)->weights().Release(0);
}

TEST_F(Umt5Test, EncoderEqualsTransformersAtTheRealHeadSizes) {
  // umT5-XXL's widths (4096, 64 heads of 64, FFN 10240) for two layers, stored as fp16.
  const nlohmann::json config = {{"vocab", 300},   {"dim", 4096},  {"heads", 64},
                                 {"head_dim", 64}, {"ffn", 10240}, {"layers", 2}};
  const Made made = MakeModel(config, "xxl", {"--spelling=hf", "--store=fp16"});
  ExpectEqualsTransformers(made);
  std::filesystem::remove(made.model);
}

TEST_F(Umt5Test, PromptsEncodeAsComfyUiEncodesThem) {
  const Made made = MakeModel(SmallConfig(), "comfy", {"--spelling=hf"});
  std::mt19937_64 random(std::random_device{}());
  const std::vector<std::string> prompts = {
      RandomText(random, 8),
      "a (red fox:1.3) in the ((snow)), (slow motion:0.7) \\(literal\\) (wide shot",
      "一只红色的狐狸，在雪中。（慢动作）",
      RandomText(random, 400),  // over 512 tokens: kept whole, as ComfyUI keeps it
      "a fox embedding:snow dawn",
      ""};
  WriteJson(dir_->path() + "/prompts.json", prompts);
  const std::string out = dir_->path() + "/comfy-out.safetensors";
  const absl::Status ran =
      Run({"comfy", "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL,
           "--workdir=" RAYLIGHT_COMFYUI_WORKDIR, "--config=" + dir_->path() + "/comfy/config.json",
           "--model=" + made.model, "--prompts=" + dir_->path() + "/prompts.json", "--out=" + out},
          "comfy-encode");
  ASSERT_TRUE(ran.ok()) << ran;
  auto expected = ReadTensors(out);
  ASSERT_TRUE(expected.ok()) << expected.status();
  auto encoder = Load(made.model);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(prompts[i].substr(0, 80));
    auto tokens = TokenizeUmt5Prompt((*encoder)->tokenizer(), prompts[i]);
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    const at::Tensor want_ids = expected->at(absl::StrCat("ids_", i));
    EXPECT_TRUE(at::equal(at::tensor(tokens->ids, at::kLong), want_ids));
    const at::Tensor want_weights = expected->at(absl::StrCat("weights_", i));
    EXPECT_TRUE(
        at::allclose(at::tensor(tokens->weights, at::kDouble).to(at::kFloat), want_weights));
    auto cond = (*encoder)->EncodePrompt(prompts[i]);
    ASSERT_TRUE(cond.ok()) << cond.status();
    const at::Tensor want = expected->at(absl::StrCat("cond_", i));
    ASSERT_EQ(cond->sizes(), want.sizes());
    EXPECT_LT(RelativeL2(*cond, want), 1e-5);
    // Past the EOS both are exactly zero: the DiT sees padding as nothing.
    EXPECT_TRUE(at::equal(cond->narrow(1, tokens->attended, cond->size(1) - tokens->attended),
                          want.narrow(1, tokens->attended, want.size(1) - tokens->attended)));
  }
  EXPECT_GT(expected->at("cond_3").size(1), 512);
}

TEST_F(Umt5Test, WhatIsNotAUsableEncoderIsRefusedByName) {
  // A Wan DiT is not a text encoder.
  wan::WanConfig tiny = *wan::WanPreset("tiny-t2v");
  const std::string dit = testing_util::MakeCheckpoint(dir_->path(), tiny, {}, "dit.safetensors");
  auto not_umt5 = Load(dit);
  ASSERT_FALSE(not_umt5.ok());
  EXPECT_NE(not_umt5.status().message().find("not a umT5 encoder"), std::string::npos)
      << not_umt5.status();
  // fp16 compute overflows T5: refused before anything loads.
  Umt5LoadOptions fp16;
  fp16.placement.compute_dtype = at::kHalf;
  auto half = Umt5Encoder::Load({dit}, fp16);
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("fp16"), std::string::npos);
  // A file that is not there.
  auto absent = Load(dir_->path() + "/absent.safetensors");
  ASSERT_FALSE(absent.ok());
  EXPECT_NE(absent.status().message().find("absent.safetensors"), std::string::npos);
}

TEST(PromptWeightsTest, ReadsComfyUisSyntax) {
  const std::vector<WeightedText> parts = ParsePromptWeights("a (b) ((c)) (d:0.5) \\(e\\) (f:x)");
  ASSERT_EQ(parts.size(), 8u);
  EXPECT_EQ(parts[1].text, "b");
  EXPECT_DOUBLE_EQ(parts[1].weight, 1.1);
  EXPECT_EQ(parts[3].text, "c");
  EXPECT_DOUBLE_EQ(parts[3].weight, 1.1 * 1.1);
  EXPECT_EQ(parts[5].text, "d");
  EXPECT_DOUBLE_EQ(parts[5].weight, 0.5);
  EXPECT_EQ(parts[6].text, " (e) ");  // escaped parentheses are text
  EXPECT_EQ(parts[7].text, "f:x");    // not a number: part of the text, weight 1.1
  EXPECT_DOUBLE_EQ(parts[7].weight, 1.1);
}

TEST(PromptWeightsTest, CleansAsWanDoes) {
  EXPECT_EQ(CleanPromptLikeWan("  a\tred\n\nfox  "), "a red fox");
  EXPECT_EQ(CleanPromptLikeWan("fox &amp;amp; hound &#x4e00;&#20154; &lt;b&gt;"),
            "fox & hound 一人 <b>");
  EXPECT_EQ(CleanPromptLikeWan("全角\xE3\x80\x80空格"), "全角 空格");  // U+3000 is whitespace
  EXPECT_EQ(CleanPromptLikeWan("&unknown; & &#xZZ;"), "&unknown; & &#xZZ;");
}

}  // namespace
}  // namespace raylight::models::text
