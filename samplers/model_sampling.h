// How a network's output becomes a denoised estimate, in sigma space (ComfyUI's
// comfy/model_sampling.py is the specification; k-diffusion conventions):
//   EPS            denoised = x - sigma * eps,             model input x / sqrt(sigma^2 + 1)
//   V_PREDICTION   denoised = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1)
//   FLOW (CONST)   denoised = x - sigma * v,               x_sigma = sigma * noise + (1 - sigma) *
//   x0
// plus the sigma table and the sigma <-> timestep maps: the discrete 1000-step DDPM table
// (scaled-linear betas, SD-style EPS/V models) or the rectified-flow table with Wan's shift
// (sigma' = s*sigma / (1 + (s-1)*sigma), timestep = sigma * 1000) or Flux's resolution shift.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace raylight::samplers {

enum class Prediction { kEps, kV, kFlow };

class ModelSampling {
 public:
  // SD-style discrete schedule: 1000 steps, betas scaled-linear from 0.00085 to 0.012.
  static ModelSampling Discrete(Prediction prediction);
  // Rectified flow (Wan, SD3): 1000 timesteps, time_snr_shift(shift, t / 1000).
  static ModelSampling DiscreteFlow(double shift);
  // Flux: sigma = exp(mu) / (exp(mu) + (1/t - 1)), mu from the image's token count.
  static ModelSampling Flux(double mu);
  // Flux's mu for a latent of `tokens` patches (linear from 0.5 at 256 to 1.15 at 4096 tokens).
  static double FluxMu(int64_t tokens, double base_shift = 0.5, double max_shift = 1.15);

  Prediction prediction() const { return prediction_; }
  double sigma_min() const { return sigmas_.front(); }
  double sigma_max() const { return sigmas_.back(); }
  // The table, ascending (index = timestep).
  const std::vector<double>& sigmas() const { return sigmas_; }
  double Timestep(double sigma) const;
  double Sigma(double timestep) const;
  // The same maps as ComfyUI's float32 tensor ops compute them (the flow table's; the others
  // rounded from the double maps): schedulers that build sigmas from timesteps use these, so
  // their sigmas are ComfyUI's to the bit.
  float SigmaF32(float timestep) const;
  float TimestepF32(float sigma) const;
  // The sigma a fraction `percent` of the way into sampling (0 = the start, 1 = the end); the
  // flow SDE samplers use it to move a first sigma of 1 (infinite log-SNR) just inside the range.
  double PercentToSigma(double percent) const;

  // The network's input for a noisy x at sigma.
  at::Tensor CalculateInput(double sigma, const at::Tensor& x) const;
  // The denoised estimate from the network output.
  at::Tensor CalculateDenoised(double sigma, const at::Tensor& output, const at::Tensor& x) const;
  // Noise at sigma on top of a latent (img2img / vid2vid): ComfyUI's noise_scaling.
  at::Tensor NoiseScaling(double sigma, const at::Tensor& noise, const at::Tensor& latent,
                          bool max_denoise) const;
  // The sampled latent back to the latent space (ComfyUI's inverse_noise_scaling).
  at::Tensor InverseNoiseScaling(double sigma, const at::Tensor& latent) const;

 private:
  enum class Table { kDdpm, kShiftedFlow, kFlux };
  double TableSigma(double t) const;  // the flow tables' map from t in (0, 1]

  Prediction prediction_ = Prediction::kEps;
  Table table_ = Table::kDdpm;
  double shift_ = 1;  // kShiftedFlow: s; kFlux: mu
  double multiplier_ = 1000;
  std::vector<double> sigmas_;
  std::vector<double> log_sigmas_;  // DDPM tables only: Timestep/Sigma interpolate in log space
};

}  // namespace raylight::samplers
