// umT5 on the GPU (issue #24; label gpu): an encoder at umT5-XXL's widths (4096, 64 heads of 64,
// FFN 10240; two layers) made by transformers (umt5_reference.py) runs on CUDA in float32 to
// transformers' CPU float32 within 1e-5, and in bf16 (the worker's dtype) within 1e-2 relative
// L2; fp8-scaled weights are dequantised per layer on the device.
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "models/text/umt5_encoder.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::text {
namespace {

using testing_util::ReadTensors;

absl::Status Reference(const testing_util::TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {RAYLIGHT_TEST_PYTHON, RAYLIGHT_UMT5_REFERENCE});
  return testing_util::RunToCompletion(args, dir.path() + "/reference.log",
                                       std::chrono::seconds(600));
}

class Umt5GpuTest : public testing::TestWithParam<bool> {};  // fp8-scaled weights or not

TEST_P(Umt5GpuTest, CudaEncodesAsTransformersDoes) {
  if (c10::cuda::device_count() < 1) GTEST_SKIP() << "needs a GPU";
  testing_util::TempDir dir("umt5-gpu");
  std::ofstream(dir.path() + "/texts.json") << "[\"a fox\"]";
  std::ofstream(dir.path() + "/config.json")
      << R"({"vocab": 300, "dim": 4096, "heads": 64, "head_dim": 64, "ffn": 10240, "layers": 2})";
  ASSERT_TRUE(Reference(dir, {"tokenizer", "--out-dir=" + dir.path(),
                              "--texts=" + dir.path() + "/texts.json"})
                  .ok());
  std::vector<std::string> args = {"model",
                                   "--config=" + dir.path() + "/config.json",
                                   absl::StrCat("--seed=", std::random_device{}() % 100000),
                                   "--spelling=hf",
                                   "--spiece=" + dir.path() + "/spiece.model",
                                   "--out=" + dir.path() + "/encoder.safetensors",
                                   "--expected=" + dir.path() + "/expected.safetensors"};
  args.push_back(GetParam() ? "--fp8" : "--store=fp16");
  const absl::Status made = Reference(dir, args);
  ASSERT_TRUE(made.ok()) << made;
  auto expected = ReadTensors(dir.path() + "/expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    Umt5LoadOptions options;
    options.placement.device = at::Device(at::kCUDA, 0);
    options.placement.compute_dtype = dtype;
    auto encoder = Umt5Encoder::Load({dir.path() + "/encoder.safetensors"}, options);
    ASSERT_TRUE(encoder.ok()) << encoder.status();
    auto hidden = (*encoder)->Forward(expected->at("ids"), expected->at("mask"));
    ASSERT_TRUE(hidden.ok()) << hidden.status();
    ASSERT_TRUE(hidden->is_cuda());
    const double error = testing_util::RelativeL2(hidden->cpu(), expected->at("hidden"));
    EXPECT_LT(error, dtype == at::kFloat ? 1e-5 : 1e-2) << dtype;
    std::cout << "relative L2 " << dtype << (GetParam() ? " fp8" : "") << ": " << error << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Weights, Umt5GpuTest, testing::Bool(),
                         [](const auto& info) { return info.param ? "Fp8Scaled" : "Fp16"; });

}  // namespace
}  // namespace raylight::models::text
