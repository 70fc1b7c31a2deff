// The samplers on a CUDA latent against the same run on the CPU (gpu label): the coefficients
// that are 0-d CPU tensors (UniPC, dpmpp_sde), the Brownian tree drawn on the CPU and moved to
// the latent's device, and the noise division there. f32, a smooth analytic network, fresh
// random inputs; the two devices' exp/log kernels differ in the last bits only.
#include <gtest/gtest.h>

#include <random>

#include "samplers/ksampler.h"

namespace raylight::samplers {
namespace {

ModelFn Network(double a, double b) {
  return [a, b](const at::Tensor& x, double timestep, Branch branch) -> absl::StatusOr<at::Tensor> {
    const double t = timestep / 1000.0;
    const double c = branch == Branch::kUncond ? -0.05 : 0.05;
    return x * a + at::tanh(x) * (b * t) + c;  // a flow velocity
  };
}

TEST(SamplersGpuTest, CudaLatentsGiveTheCpuResult) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  std::mt19937_64 rng(std::random_device{}());
  const ModelSampling flow = ModelSampling::DiscreteFlow(5.0);
  // The ancestral samplers are left out: their step noise comes from a generator on the latent's
  // device, as ComfyUI's does, so CUDA and CPU runs differ by design.
  for (const char* sampler : {"euler", "uni_pc", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"}) {
    for (const char* scheduler : {"simple", "karras"}) {
      KSamplerOptions options;
      options.seed = rng() % (uint64_t{1} << 53);
      options.steps = 8;
      options.cfg = 3.0;
      options.sampler = sampler;
      options.scheduler = scheduler;
      options.latent_format = &models::Wan21LatentFormat();
      const ModelFn model = Network(0.1 + 0.3 * (rng() % 100) / 100.0, -0.2);
      const at::Tensor latent = at::zeros({1, 16, 3, 6, 8});
      auto cpu = KSample(model, flow, latent, options);
      auto gpu = KSample(model, flow, latent.to(at::kCUDA), options);
      ASSERT_TRUE(cpu.ok()) << sampler << ": " << cpu.status();
      ASSERT_TRUE(gpu.ok()) << sampler << ": " << gpu.status();
      ASSERT_TRUE(gpu->is_cuda()) << sampler;
      const double error = ((gpu->cpu() - *cpu).norm() / cpu->norm()).item<double>();
      EXPECT_LT(error, 1e-5) << sampler << " " << scheduler;
    }
  }
}

}  // namespace
}  // namespace raylight::samplers
