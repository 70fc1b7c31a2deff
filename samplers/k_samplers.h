// The sampling loops, with ComfyUI's names and k-diffusion's step formulas (ComfyUI's
// comfy/k_diffusion/sampling.py descends from crowsonkb's k-diffusion; tests compare step by step
// against k-diffusion itself). Everything works in sigma space on a Denoiser; the model, its
// prediction type and CFG live behind that function.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "samplers/model_sampling.h"
#include "samplers/sampler_names.h"

namespace raylight::samplers {

// x at noise level sigma -> the denoised estimate (same shape).
using Denoiser = std::function<absl::StatusOr<at::Tensor>(const at::Tensor& x, double sigma)>;
// Fresh standard-normal noise shaped like the latent for the step sigma -> sigma_next.
using NoiseSampler = std::function<at::Tensor(double sigma, double sigma_next)>;

struct StepInfo {
  int step = 0;   // 0-based
  int total = 0;  // steps in this run
  double sigma = 0;
  double elapsed_seconds = 0;  // since the sampling loop started
  const at::Tensor* x = nullptr;
  const at::Tensor* denoised = nullptr;
  // A PNG of the denoised estimate, on the steps KSample was asked to preview; null otherwise.
  const std::string* preview_png = nullptr;
};
using StepCallback = std::function<void(const StepInfo&)>;

struct SamplerOptions {
  double eta = 1.0;      // ancestral / SDE noise amount
  double s_noise = 1.0;  // noise multiplier
  // The model's sampling: lcm re-noises through its noise scaling (required for lcm), the
  // ancestral samplers switch to their rectified-flow forms (ComfyUI's *_RF samplers) and the SDE
  // samplers to flow's log-SNR on flow models.
  const ModelSampling* sampling = nullptr;
};

// ComfyUI's default noise sampler: a generator on the latent's device seeded with the seed (plus
// one on the CPU, as the newest ComfyUI does so that the step noise does not replay the initial
// noise; ComfyUI 0.3.64 still seeded it with the seed itself), one randn of the latent's shape per
// call.
NoiseSampler SeededNoiseSampler(const at::Tensor& like, uint64_t seed);

// Noise from one Brownian path W over sigma: a call for (a, b) returns (W(b) - W(a)) / sqrt|b - a|,
// so overlapping intervals within a step (dpmpp_sde's half step and full step) are correlated as
// the SDE solvers assume. The path is ComfyUI's, bit for bit: torchsde's BrownianTree on the CPU
// over [the smallest positive sigma, the largest] of the run's `sigmas`, seeded with `seed`
// (samplers/brownian_tree.h), the division in float32 on the latent's device.
NoiseSampler BrownianNoiseSampler(const at::Tensor& like, uint64_t seed,
                                  const std::vector<double>& sigmas);

// Whether ComfyUI gives this sampler Brownian-path noise (the SDE samplers).
bool UsesBrownianNoise(const std::string& sampler);

// Runs sampler `name` from x (already noised to sigmas[0]) through `sigmas` (descending, ending
// with 0 for a full run). Errors: unknown name (lists the known ones), a sigma table that is not
// at least 2 long, a denoiser error, or a non-finite denoised estimate (names the step).
absl::StatusOr<at::Tensor> Sample(const std::string& name, const Denoiser& denoiser, at::Tensor x,
                                  const std::vector<double>& sigmas, const NoiseSampler& noise,
                                  const SamplerOptions& options = {},
                                  const StepCallback& callback = nullptr);

// k-diffusion's ancestral split of a step: (sigma_down, sigma_up).
std::pair<double, double> AncestralStep(double sigma_from, double sigma_to, double eta);

// The linear multistep (lms) coefficient: the integral over [t_i, t_{i+1}] of the Lagrange basis
// polynomial j of the last `order` points, as ComfyUI's scipy.integrate.quad computes it (to
// float32 precision: see k_samplers.cc).
double LinearMultistepCoefficient(int order, const std::vector<double>& t, int i, int j);

}  // namespace raylight::samplers
