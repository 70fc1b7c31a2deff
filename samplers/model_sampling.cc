#include "samplers/model_sampling.h"

#include <algorithm>
#include <cmath>

namespace raylight::samplers {
namespace {

double TimeSnrShift(double alpha, double t) {
  if (alpha == 1.0) return t;
  return alpha * t / (1 + (alpha - 1) * t);
}

// Entry t (1..1000) of ComfyUI's ModelSamplingDiscreteFlow table, in its float32 arithmetic:
// sigma(arange(1, 1001) / 1000 * 1000) = time_snr_shift(shift, timestep / 1000), where every
// operation is a float32 tensor op and the Python scalars are rounded to float32 first. The
// schedulers pick entries of this table (beta by index), so its bits are ComfyUI's.
float FlowSigmaF32(double shift, float timestep) {
  const float x = timestep / 1000.0f;
  if (shift == 1.0) return x;
  return static_cast<float>(shift) * x / (1.0f + static_cast<float>(shift - 1.0) * x);
}
float FlowTableSigma(double shift, int t) {
  return FlowSigmaF32(shift, (static_cast<float>(t) / 1000.0f) * 1000.0f);
}

}  // namespace

ModelSampling ModelSampling::Discrete(Prediction prediction) {
  ModelSampling m;
  m.prediction_ = prediction;
  // betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2; alphas_cumprod = cumprod(1 - betas).
  constexpr int kSteps = 1000;
  const double start = std::sqrt(0.00085), end = std::sqrt(0.012);
  double cumprod = 1;
  for (int i = 0; i < kSteps; ++i) {
    const double root = start + (end - start) * i / (kSteps - 1);
    cumprod *= 1 - root * root;
    // ComfyUI keeps the table in float32.
    const float sigma = static_cast<float>(std::sqrt((1 - cumprod) / cumprod));
    m.sigmas_.push_back(sigma);
    m.log_sigmas_.push_back(std::log(static_cast<double>(sigma)));
  }
  return m;
}

ModelSampling ModelSampling::DiscreteFlow(double shift) {
  ModelSampling m;
  m.prediction_ = Prediction::kFlow;
  m.table_ = Table::kShiftedFlow;
  m.shift_ = shift;
  m.multiplier_ = 1000;
  for (int t = 1; t <= 1000; ++t) m.sigmas_.push_back(FlowTableSigma(shift, t));
  return m;
}

ModelSampling ModelSampling::Flux(double mu) {
  ModelSampling m;
  m.prediction_ = Prediction::kFlow;
  m.table_ = Table::kFlux;
  m.shift_ = mu;
  m.multiplier_ = 1;  // Flux's timestep is sigma itself
  for (int t = 1; t <= 10000; ++t)
    m.sigmas_.push_back(static_cast<float>(m.TableSigma(t / 10000.0)));
  return m;
}

double ModelSampling::TableSigma(double t) const {
  if (table_ == Table::kFlux) return std::exp(shift_) / (std::exp(shift_) + (1 / t - 1));
  return TimeSnrShift(shift_, t);
}

float ModelSampling::SigmaF32(float timestep) const {
  if (table_ == Table::kShiftedFlow) return FlowSigmaF32(shift_, timestep);
  return static_cast<float>(Sigma(timestep));
}

float ModelSampling::TimestepF32(float sigma) const {
  if (table_ != Table::kDdpm) return sigma * static_cast<float>(multiplier_);
  return static_cast<float>(Timestep(sigma));
}

double ModelSampling::FluxMu(int64_t tokens, double base_shift, double max_shift) {
  const double slope = (max_shift - base_shift) / (4096 - 256);
  return base_shift + slope * (static_cast<double>(tokens) - 256);
}

double ModelSampling::Timestep(double sigma) const {
  if (table_ != Table::kDdpm) return sigma * multiplier_;
  // The nearest table entry in log space (ComfyUI's argmin over |log sigma - log_sigmas|).
  const double log_sigma = std::log(sigma);
  size_t best = 0;
  for (size_t i = 1; i < log_sigmas_.size(); ++i) {
    if (std::abs(log_sigma - log_sigmas_[i]) < std::abs(log_sigma - log_sigmas_[best])) best = i;
  }
  return static_cast<double>(best);
}

double ModelSampling::Sigma(double timestep) const {
  if (table_ != Table::kDdpm) return TableSigma(timestep / multiplier_);
  // Log-linear interpolation between the neighbouring table entries.
  const double t = std::clamp(timestep, 0.0, static_cast<double>(log_sigmas_.size() - 1));
  const size_t low = static_cast<size_t>(std::floor(t));
  const size_t high = static_cast<size_t>(std::ceil(t));
  const double w = t - low;
  return std::exp((1 - w) * log_sigmas_[low] + w * log_sigmas_[high]);
}

double ModelSampling::PercentToSigma(double percent) const {
  if (percent <= 0) return table_ == Table::kDdpm ? 999999999.9 : 1.0;
  if (percent >= 1) return 0.0;
  if (table_ != Table::kDdpm) return TableSigma(1 - percent);
  return Sigma((1 - percent) * 999);
}

at::Tensor ModelSampling::CalculateInput(double sigma, const at::Tensor& x) const {
  if (prediction_ == Prediction::kFlow) return x;
  return x / std::sqrt(sigma * sigma + 1);
}

at::Tensor ModelSampling::CalculateDenoised(double sigma, const at::Tensor& output,
                                            const at::Tensor& x) const {
  switch (prediction_) {
    case Prediction::kEps:
    case Prediction::kFlow:
      return x - output * sigma;
    case Prediction::kV: {
      const double s2 = sigma * sigma;
      return x * (1 / (s2 + 1)) - output * (sigma / std::sqrt(s2 + 1));
    }
  }
  return x;
}

at::Tensor ModelSampling::NoiseScaling(double sigma, const at::Tensor& noise,
                                       const at::Tensor& latent, bool max_denoise) const {
  if (prediction_ == Prediction::kFlow) return noise * sigma + latent * (1 - sigma);
  const double scale = max_denoise ? std::sqrt(1 + sigma * sigma) : sigma;
  return noise * scale + latent;
}

at::Tensor ModelSampling::InverseNoiseScaling(double sigma, const at::Tensor& latent) const {
  if (prediction_ == Prediction::kFlow) return latent / (1 - sigma);
  return latent;
}

}  // namespace raylight::samplers
