// The safetensors reader's validation: every malformed input gives an error naming the file and
// (where there is one) the tensor, and never a crash; valid files round-trip zero-copy.
#include "models/core/safetensors.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "models/core/safetensors_tensors.h"
#include "tests/util/read_file.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

std::string WithHeader(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + data;
}

absl::Status Parse(const std::string& bytes) { return ParseSafetensors(bytes, "test.st").status(); }

void ExpectError(const std::string& bytes, const std::string& needle) {
  absl::Status status = Parse(bytes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("test.st"), std::string::npos) << status;
  EXPECT_NE(status.message().find(needle), std::string::npos) << status;
}

TEST(SafetensorsTest, ValidHeaderParses) {
  auto header = ParseSafetensors(
      WithHeader(
          R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
          R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}})",
          std::string(22, 'x')),
      "test.st");
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->metadata.at("k"), "v");
  EXPECT_EQ(header->Find("b")->dtype, StDtype::kBF16);
  EXPECT_EQ(header->Find("a")->numel(), 4);
}

TEST(SafetensorsTest, MalformedInputsAreRefusedWithTheirReason) {
  ExpectError("", "truncated");
  ExpectError(std::string("\x05\0\0\0", 4), "truncated");
  ExpectError(WithHeader("{}", "").substr(0, 9), "runs past the end");
  std::string huge(8, '\xff');
  ExpectError(huge + "{}", "exceeds");
  ExpectError(WithHeader("{not json", ""), "not well-formed JSON");
  ExpectError(WithHeader("[1,2]", ""), "not a JSON object");
  ExpectError(WithHeader(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "xxxx"),
              "unknown dtype 'F33'");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "xxxx"),
              "tensor 'a': holds 4 bytes but dtype F32 x 2 elements needs 8");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "xxxx"),
              "lies past the data section");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                         "xxxxxx"),
              "overlap");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "xxxxxxxx"),
              "hole");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "xxxxxxxx"),
              "tensors cover 4");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx"),
              "shape entries");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],)"
                         R"("data_offsets":[0,4]}})",
                         "xxxx"),
              "overflows");
  ExpectError(WithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "xxxx"),
              "begin <= end");
  ExpectError(WithHeader(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", "xxxx"), "dtype");
  ExpectError(WithHeader(R"({"a":5})", ""), "not an object");
  ExpectError(WithHeader(R"({"__metadata__":{"k":1}})", ""), "not a string");
}

TEST(SafetensorsTest, RandomCorruptionNeverCrashes) {
  const std::string valid =
      WithHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x'));
  std::mt19937 rng(std::random_device{}());
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    (void)Parse(bytes);  // any result but a crash
  }
}

TEST(SafetensorsTest, WrittenFilesRoundTripAsZeroCopyViews) {
  testing_util::TempDir dir("safetensors");
  at::manual_seed(std::random_device{}());
  NamedTensors tensors = {{"w", at::randn({3, 5})},
                          {"h", at::randn({7}).to(at::kHalf)},
                          {"b", at::randn({2, 2}).to(at::kBFloat16)},
                          {"f8", at::randn({4}).to(at::kFloat8_e4m3fn)},
                          {"i", at::randint(0, 100, {3}, at::kLong)}};
  const std::string path = dir.path() + "/t.safetensors";
  ASSERT_TRUE(WriteTensors(path, tensors, {{"who", "test"}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->header().metadata.at("who"), "test");
  for (const auto& [name, tensor] : tensors) {
    const StTensorInfo* info = (*file)->header().Find(name);
    ASSERT_NE(info, nullptr) << name;
    auto view = ViewTensor(*file, *info);
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(view->scalar_type(), tensor.scalar_type());
    EXPECT_TRUE(at::equal(view->view(at::kByte), tensor.contiguous().view(at::kByte))) << name;
    EXPECT_EQ(view->data_ptr(), static_cast<const void*>((*file)->Bytes(*info).data()));
  }
  auto bytes = SerializeTensors(tensors);
  ASSERT_TRUE(bytes.ok());
  auto parsed = ParseTensors(*bytes, "payload");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(at::equal(parsed->at("w"), tensors[0].second));

  // A file cut short is refused with its path.
  const std::string all = testing_util::ReadFileOrEmpty(path);
  const std::string cut = dir.path() + "/cut.safetensors";
  std::ofstream(cut, std::ios::binary) << all.substr(0, all.size() - 3);
  auto truncated = SafetensorsFile::Open(cut);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(truncated.status().message().find(cut), std::string::npos);
  EXPECT_EQ(SafetensorsFile::Open(dir.path() + "/none").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace raylight::models
