// The tokenizer in a process that also holds Debian's libprotobuf, as every worker does (gRPC):
// libsentencepiece's bundled protobuf-lite, linked directly, aborts such a process at start-up
// on protobuf's version check; loaded as sentencepiece_shim.h describes it must tokenize as
// Python's sentencepiece does while the process's own protobuf keeps working.
#include <gtest/gtest.h>

#include <fstream>

#include "models/text/sentencepiece_tokenizer.h"
#include "nlohmann/json.hpp"
#include "raylight/v1/diffusion.pb.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::text {
namespace {

TEST(TokenizerBesideProtobufTest, TokenizesAndLeavesTheProcesssProtobufWorking) {
  testing_util::TempDir dir("spm-protobuf");
  const std::vector<std::string> texts = {"a red fox in the snow", "一只红色的狐狸，在雪中。"};
  std::ofstream(dir.path() + "/texts.json") << nlohmann::json(texts).dump();
  const absl::Status trained = testing_util::RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_UMT5_REFERENCE, "tokenizer", "--out-dir=" + dir.path(),
       "--texts=" + dir.path() + "/texts.json"},
      dir.path() + "/train.log", std::chrono::seconds(120));
  ASSERT_TRUE(trained.ok()) << trained;

  v1::SampleJob job;
  job.set_model("wan.safetensors");
  job.set_steps(30);
  auto tokenizer = SentencePieceTokenizer::FromFile(dir.path() + "/spiece.model");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::ifstream ids_file(dir.path() + "/ids.json");
  const nlohmann::json expected = nlohmann::json::parse(ids_file);
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = (*tokenizer)->Encode(texts[i]);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, expected[i].get<std::vector<int>>());
  }
  v1::SampleJob parsed;
  ASSERT_TRUE(parsed.ParseFromString(job.SerializeAsString()));
  EXPECT_EQ(parsed.model(), "wan.safetensors");
  EXPECT_EQ(parsed.steps(), 30);
}

}  // namespace
}  // namespace raylight::models::text
