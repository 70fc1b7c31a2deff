// Sigma schedules with ComfyUI's names and numerics (comfy/samplers.py: calculate_sigmas and the
// scheduler functions; k-diffusion's get_sigmas_karras / get_sigmas_exponential). Every
// schedule ends with 0 except where ComfyUI's does not.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "samplers/model_sampling.h"

namespace raylight::samplers {

// The names, in ComfyUI's order: simple, normal, karras, exponential, sgm_uniform, ddim_uniform,
// beta, linear_quadratic, kl_optimal.
const std::vector<std::string>& SchedulerNames();

// `steps` + 1 sigmas (descending) for a full-strength run.
absl::StatusOr<std::vector<double>> ScheduleSigmas(const std::string& scheduler,
                                                   const ModelSampling& sampling, int steps);

// What ComfyUI's KSampler uses: denoise < 1 schedules int(steps / denoise) steps and keeps the
// last steps + 1 sigmas; samplers that discard the penultimate sigma (dpm_2, dpm_2_ancestral,
// uni_pc, uni_pc_bh2) schedule one step more and drop it. Errors name the field.
absl::StatusOr<std::vector<double>> KSamplerSigmas(const std::string& scheduler,
                                                   const std::string& sampler,
                                                   const ModelSampling& sampling, int steps,
                                                   double denoise);

// scipy.stats.beta.ppf for the beta scheduler, bit for bit (Boost.Math with scipy's policy).
double BetaPpf(double q, double a, double b);

}  // namespace raylight::samplers
