// GGUF on the GPU (issue #25; label gpu): the CUDA dequantisation gives the CPU path's bits for
// every type (float32 and bf16 out; the CPU path is checked against gguf-py in gguf_test.cc), and
// a GGUF Wan (the 1.3B's shapes, two blocks) keeps its blocks quantised on the device and runs
// the forward of the same weights dequantised at load, bit for bit, resident and layer-swapped.
#include <ATen/CPUGeneratorImpl.h>
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/gguf.h"
#include "models/core/gguf_dequant.h"
#include "models/core/gguf_random.h"
#include "models/core/safetensors_tensors.h"
#include "models/wan/wan_loader.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

const at::Device kCuda("cuda");

TEST(GgufGpuTest, CudaDequantisationGivesTheCpuBitsForEveryType) {
  if (c10::cuda::device_count() < 1) GTEST_SKIP() << "needs a GPU";
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(std::random_device{}());
  for (GgmlType type :
       {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
        GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    const std::vector<int64_t> shape = {96, 1280};  // 480 K blocks, 3,840 32-value blocks
    const at::Tensor bytes = RandomGgufBlocks(type, 96 * 1280, generator, at::kCPU);
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      auto cpu = DequantizeGguf(bytes, type, shape, dtype);
      auto gpu = DequantizeGguf(bytes.to(kCuda), type, shape, dtype);
      ASSERT_TRUE(cpu.ok() && gpu.ok()) << TraitsOf(type).name;
      EXPECT_TRUE(at::equal(gpu->cpu(), *cpu)) << TraitsOf(type).name << " as " << dtype;
    }
  }
}

class GgufGpuWanTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("gguf-gpu");
    config_ = new wan::WanConfig(*wan::WanPreset("wan2.1-t2v-1.3b"));
    config_->num_layers = 4;
  }
  static void TearDownTestSuite() {
    delete config_;
    delete dir_;
  }
  static std::string Make(GgmlType type) {
    wan::MakeCheckpointOptions options;
    options.gguf = type;
    options.spelling = wan::KeySpelling::kComfyUi;
    options.device = kCuda;
    options.seed = std::random_device{}();
    const std::string path = dir_->path() + "/" + TraitsOf(type).name + ".gguf";
    EXPECT_TRUE(wan::MakeWanCheckpoint(*config_, path, options).ok());
    return path;
  }
  static PlacementOptions Placement(bool keep_quantised = true) {
    PlacementOptions options;
    options.device = kCuda;
    options.compute_dtype = at::kBFloat16;
    options.keep_fp8 = keep_quantised;
    return options;
  }
  static at::Tensor Forward(const wan::LoadedWan& loaded, const wan::WanInputs& inputs) {
    auto out = wan::WanForward(loaded.config, inputs, ParallelContext{}, *loaded.weights);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->cpu() : at::Tensor();
  }
  static testing_util::TempDir* dir_;
  static wan::WanConfig* config_;
};

testing_util::TempDir* GgufGpuWanTest::dir_ = nullptr;
wan::WanConfig* GgufGpuWanTest::config_ = nullptr;

TEST_F(GgufGpuWanTest, QuantisedBlocksOnTheDeviceRunTheDequantisedForward) {
  if (c10::cuda::device_count() < 1) GTEST_SKIP() << "needs a GPU";
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_K}) {
    const std::string path = Make(type);
    auto quantised = wan::LoadWanResident({path}, Placement());
    ASSERT_TRUE(quantised.ok()) << quantised.status();
    auto eager = wan::LoadWanResident({path}, Placement(/*keep_quantised=*/false));
    ASSERT_TRUE(eager.ok()) << eager.status();
    // Made on the CPU; the forward moves them to the provider's device.
    const wan::WanInputs inputs = testing_util::RandomWanInputs(*config_, {1, 3, 30, 52, 77});
    const at::Tensor expected = Forward(*eager, inputs);
    EXPECT_TRUE(at::equal(Forward(*quantised, inputs), expected)) << TraitsOf(type).name;
    auto* resident = dynamic_cast<ResidentWeights*>(quantised->weights.get());
    auto* dense = dynamic_cast<ResidentWeights*>(eager->weights.get());
    ASSERT_TRUE(resident != nullptr && dense != nullptr);
    // The blocks' bytes (the globals are F16/F32 in the file): Q8_0 is 34 bytes per 32 values
    // (53% of bf16), Q4_K 144 per 256 (28%); norms, biases and modulation are the same in both.
    const double fraction =
        static_cast<double>(resident->resident_bytes() - resident->globals().bytes()) /
        static_cast<double>(dense->resident_bytes() - dense->globals().bytes());
    std::cout << TraitsOf(type).name << " block device bytes over bf16: " << fraction << "\n";
    EXPECT_LT(fraction, type == GgmlType::kQ8_0 ? 0.55 : 0.30);
    SwapOptions swap;
    swap.budget_fraction = 0.5;
    auto swapped = wan::LoadWanSwapped({path}, Placement(), swap);
    ASSERT_TRUE(swapped.ok()) << swapped.status();
    EXPECT_TRUE(at::equal(Forward(*swapped, inputs), expected)) << TraitsOf(type).name;
  }
}

// A rank-16 LoRA on the Q8_0 base: applied on the GPU after each dequantisation, the same bits as
// merging it at load into the file's values (dequantised on the CPU into a float32 safetensors
// file, the CUDA decoders' bits being the CPU's).
TEST_F(GgufGpuWanTest, LoraOnAQuantisedBaseEqualsTheMergeIntoItsValues) {
  if (c10::cuda::device_count() < 1) GTEST_SKIP() << "needs a GPU";
  const std::string path = Make(GgmlType::kQ8_0);
  auto opened = wan::OpenWanCheckpoint({path});
  ASSERT_TRUE(opened.ok()) << opened.status();
  NamedTensors values;
  for (const auto& [name, tensor] : opened->checkpoint.tensors) {
    values.emplace_back(name, Materialize(tensor, at::kFloat, at::kCPU));
  }
  const std::string dense = dir_->path() + "/q8_0-values.safetensors";
  ASSERT_TRUE(WriteTensors(dense, values, opened->checkpoint.metadata).ok());
  NamedTensors lora;
  for (int block = 0; block < config_->num_layers; ++block) {
    for (const char* module : {"self_attn_q", "ffn_2"}) {
      const std::string name = absl::StrCat("lora_unet_blocks_", block, "_", module);
      const bool ffn = std::string(module) == "ffn_2";
      lora.emplace_back(name + ".lora_up.weight",
                        (at::randn({config_->dim, 16}) * 0.02).to(at::kBFloat16));
      lora.emplace_back(
          name + ".lora_down.weight",
          (at::randn({16, ffn ? config_->ffn_dim : config_->dim}) * 0.02).to(at::kBFloat16));
    }
  }
  const std::string lora_path = dir_->path() + "/lora.safetensors";
  ASSERT_TRUE(WriteTensors(lora_path, lora).ok());
  const std::vector<LoraFile> loras = {{lora_path, 0.9}};
  auto quantised = wan::LoadWanResident({path}, Placement(), loras);
  ASSERT_TRUE(quantised.ok()) << quantised.status();
  auto merged = wan::LoadWanResident({dense}, Placement(), loras);
  ASSERT_TRUE(merged.ok()) << merged.status();
  const wan::WanInputs inputs = testing_util::RandomWanInputs(*config_, {1, 3, 30, 52, 77});
  const at::Tensor expected = Forward(*merged, inputs);
  EXPECT_TRUE(at::equal(Forward(*quantised, inputs), expected));
  SwapOptions swap;
  swap.budget_fraction = 0.5;
  auto swapped = wan::LoadWanSwapped({path}, Placement(), swap, loras);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_TRUE(at::equal(Forward(*swapped, inputs), expected));
}

}  // namespace
}  // namespace raylight::models
