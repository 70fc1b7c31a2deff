// The one table of sampler and scheduler names (ComfyUI's KSampler.SAMPLERS / SCHEDULERS, in its
// order): what `raylightctl sample --help` lists and what every lookup checks against.
#pragma once

#include <string>
#include <vector>

namespace raylight::samplers {

inline const std::vector<std::string> kSamplerNames = {"euler",
                                                       "euler_ancestral",
                                                       "heun",
                                                       "dpm_2",
                                                       "dpm_2_ancestral",
                                                       "lms",
                                                       "dpmpp_2s_ancestral",
                                                       "dpmpp_sde",
                                                       "dpmpp_2m",
                                                       "dpmpp_2m_sde",
                                                       "dpmpp_3m_sde",
                                                       "lcm",
                                                       "res_multistep",
                                                       "ddim",
                                                       "uni_pc",
                                                       "uni_pc_bh2"};

inline const std::vector<std::string> kSchedulerNames = {
    "simple",       "normal", "karras",           "exponential", "sgm_uniform",
    "ddim_uniform", "beta",   "linear_quadratic", "kl_optimal"};

// The most steps a schedule may have, and the largest start and end step: ComfyUI's maximum
// (KSampler's steps, KSamplerAdvanced's end_at_step default).
inline constexpr int kMaxScheduleSteps = 10000;

inline const std::vector<std::string>& SamplerNames() { return kSamplerNames; }

inline bool IsSamplerName(const std::string& name) {
  for (const auto& known : kSamplerNames) {
    if (known == name) return true;
  }
  return false;
}

// ComfyUI schedules one more step for these and drops the penultimate sigma.
inline bool DiscardsPenultimateSigma(const std::string& sampler) {
  return sampler == "dpm_2" || sampler == "dpm_2_ancestral" || sampler == "uni_pc" ||
         sampler == "uni_pc_bh2";
}

// UniPC cannot step to sigma 0 (an infinite log-SNR): ComfyUI's runs its last step to this sigma
// instead, and its KSampler then scales the result back from it too (samplers/ksampler.cc).
inline constexpr double kUniPcLastSigma = 0.001;

// Whether every step of the sampler evaluates the model once (not Heun's or DPM-2's two, nor
// the SDE / 2S samplers' midpoint): step caches calibrated per step count calls.
inline bool CallsTheModelOncePerStep(const std::string& sampler) {
  for (const char* twice :
       {"heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde"}) {
    if (sampler == twice) return false;
  }
  return true;
}

inline bool IsUniPc(const std::string& sampler) {
  return sampler == "uni_pc" || sampler == "uni_pc_bh2";
}

}  // namespace raylight::samplers
