// LoRA on the GPU (issue #25; label gpu): a LoRA'd scaled-fp8 weight merged on a GPU goes back to
// fp8 with the bits ComfyUI's stochastic rounding gives on that GPU. The draws come from the
// device's own generator (CUDA's Philox, not the CPU's Mersenne twister), so the CPU comparison
// in lora_test.cc does not cover this path; fp8_rounding_reference.py runs comfy/float.py on the
// same card with the same seed.
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "models/core/fp8_requantize.h"
#include "models/core/safetensors_tensors.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

class LoraGpuTest : public testing::TestWithParam<at::DeviceType> {};

TEST_P(LoraGpuTest, Fp8RoundingIsComfyUisOnTheSameDevice) {
  const at::Device device(GetParam());
  if (device.is_cuda() && c10::cuda::device_count() < 1) GTEST_SKIP() << "needs a GPU";
  testing_util::TempDir dir("lora-gpu");
  std::mt19937_64 random(std::random_device{}());
  // 5120 x 5120 is over ComfyUI's 4096^2 values per slice: its rows come in two slices, each
  // drawing from where the last one left the generator.
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{37, 129}, {5120, 5120}}) {
    const uint32_t seed = static_cast<uint32_t>(random());
    const at::Tensor value = at::randn(shape, at::TensorOptions().device(device)) * 40;
    const std::string input = absl::StrCat(dir.path(), "/value-", shape[0], ".safetensors");
    const std::string output = absl::StrCat(dir.path(), "/comfy-", shape[0], ".safetensors");
    ASSERT_TRUE(WriteTensors(input, {{"value", value.cpu()}}).ok());
    const absl::Status ran = testing_util::RunToCompletion(
        {RAYLIGHT_TEST_PYTHON, RAYLIGHT_FP8_ROUNDING_REFERENCE,
         "--comfyui-tarball=" RAYLIGHT_COMFYUI_TARBALL, "--input=" + input,
         "--device=" + device.str(), absl::StrCat("--seed=", seed), "--out=" + output},
        output + ".log", std::chrono::seconds(120));
    ASSERT_TRUE(ran.ok()) << ran;
    auto expected = SafetensorsFile::Open(output);
    ASSERT_TRUE(expected.ok()) << expected.status();
    for (const auto& [name, dtype] :
         {std::pair{"e4m3fn", at::kFloat8_e4m3fn}, std::pair{"e5m2", at::kFloat8_e5m2}}) {
      const at::Tensor ours = StochasticRoundToFp8(value, dtype, seed);
      ASSERT_EQ(ours.device().type(), device.type());
      const StTensorInfo* info = (*expected)->header().Find(name);
      ASSERT_NE(info, nullptr) << name;
      const at::Tensor want = *ViewTensor(*expected, *info);
      EXPECT_TRUE(at::equal(ours.cpu().view(at::kByte), want.view(at::kByte)))
          << name << " " << shape[0] << "x" << shape[1] << " seed " << seed;
    }
  }
}

// The CPU row checks the test itself where no GPU is (lora_test.cc covers the CPU merge).
INSTANTIATE_TEST_SUITE_P(Devices, LoraGpuTest, testing::Values(at::kCPU, at::kCUDA),
                         [](const auto& info) { return info.param == at::kCPU ? "Cpu" : "Cuda"; });

}  // namespace
}  // namespace raylight::models
