// The Wan VAE on the GPU (issue #24; label gpu): a VAE at Wan 2.1's and 2.2's real widths with
// random weights decodes and encodes on CUDA in float32 (TF32 off) as on the CPU within 1e-5
// relative L2, and in bf16 (the workers' dtype) within 5e-2: bf16 rounding through 30-odd
// convolutions of random weights is that far from float32 whoever computes it (diffusers' own
// bf16 decode is 0.015 from its fp32 one at 480p, ours the same, BENCHMARKS.md; 0.022 was seen
// here at this small size), while a wrong operation is off by order one. Channels-last too.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>

#include <random>

#include "models/vae/wan_vae.h"
#include "models/vae/wan_vae_random.h"
#include "tests/models/wan_test_util.h"

namespace raylight::models::vae {
namespace {

using testing_util::RelativeL2;

class WanVaeGpuTest : public testing::TestWithParam<std::string> {};

TEST_P(WanVaeGpuTest, CudaDecodesAndEncodesAsTheCpuDoes) {
  if (c10::cuda::device_count() < 1) GTEST_SKIP() << "needs a GPU";
  auto config = WanVaePreset(GetParam());
  ASSERT_TRUE(config.ok());
  const std::map<std::string, at::Tensor> weights =
      RandomWanVaeWeights(*config, std::random_device{}());
  const int64_t f = config->spatial_factor();
  const at::Tensor latent = at::randn({1, config->z_dim, 3, 6, 10});
  const at::Tensor video = at::rand({1, 3, 5, 4 * f, 6 * f}) * 2 - 1;
  auto cpu = WanVae::FromWeights(*config, weights, WanVaeOptions());
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  auto expected_frames = (*cpu)->Decode(latent);
  ASSERT_TRUE(expected_frames.ok()) << expected_frames.status();
  auto expected_latent = (*cpu)->Encode(video);
  ASSERT_TRUE(expected_latent.ok()) << expected_latent.status();

  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    for (bool channels_last : {false, true}) {
      WanVaeOptions options;
      options.device = at::Device(at::kCUDA, 0);
      options.dtype = dtype;
      options.channels_last = channels_last;
      auto gpu = WanVae::FromWeights(*config, weights, options);
      ASSERT_TRUE(gpu.ok()) << gpu.status();
      const double bound = dtype == at::kFloat ? 1e-5 : 5e-2;
      auto frames = (*gpu)->Decode(latent);
      ASSERT_TRUE(frames.ok()) << frames.status();
      const double frames_error = RelativeL2(frames->cpu(), *expected_frames);
      EXPECT_LT(frames_error, bound) << "decode " << at::toString(dtype) << " " << channels_last;
      auto encoded = (*gpu)->Encode(video);
      ASSERT_TRUE(encoded.ok()) << encoded.status();
      const double latent_error = RelativeL2(encoded->cpu(), *expected_latent);
      EXPECT_LT(latent_error, bound) << "encode " << at::toString(dtype) << " " << channels_last;
      std::cout << GetParam() << " " << at::toString(dtype)
                << (channels_last ? " channels-last" : "") << ": decode relative L2 "
                << frames_error << ", encode " << latent_error << "\n";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, WanVaeGpuTest, testing::Values("wan2.1", "wan2.2"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param == "wan2.1" ? std::string("Wan21")
                                                         : std::string("Wan22");
                         });

}  // namespace
}  // namespace raylight::models::vae
