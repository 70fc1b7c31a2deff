#include "samplers/easy_cache.h"

namespace raylight::samplers {
namespace {

// ComfyUI's measure: the mean absolute value of a (float32) tensor, as a float.
float MeanAbs(const at::Tensor& x) { return x.flatten().abs().mean().item<float>(); }

}  // namespace

EasyCache::EasyCache(const EasyCacheSettings& settings, const ModelSampling& sampling,
                     EasyCacheStats* stats)
    : settings_(settings),
      // ComfyUI compares its float32 sigmas with these as float32 numbers.
      start_sigma_(static_cast<float>(sampling.PercentToSigma(settings.start_percent))),
      end_sigma_(static_cast<float>(sampling.PercentToSigma(settings.end_percent))),
      stats_(stats) {}

at::Tensor EasyCache::Subsample(const at::Tensor& x) const {
  const int64_t stride = settings_.subsample;
  return x.slice(-2, 0, c10::nullopt, stride).slice(-1, 0, c10::nullopt, stride);
}

std::optional<BranchOutputs> EasyCache::Reuse(const at::Tensor& input, double sigma,
                                              bool has_uncond, int calls) {
  const float step_sigma = static_cast<float>(sigma);
  past_end_ = !(step_sigma > end_sigma_);
  input_change_.reset();
  if (past_end_ || !(step_sigma <= start_sigma_)) return std::nullopt;
  measuring_ = true;
  if (input_before_.defined()) input_change_ = MeanAbs(Subsample(input) - input_before_);
  if (!output_mean_.has_value() || !rate_.has_value()) return std::nullopt;
  accumulated_ += (*rate_ * *input_change_) / *output_mean_;
  const bool answerable =
      cond_difference_.defined() && (!has_uncond || uncond_difference_.defined());
  if (accumulated_ < static_cast<float>(settings_.reuse_threshold) && answerable) {
    if (stats_ != nullptr) stats_->calls_saved += calls;
    BranchOutputs reused{input + cond_difference_, at::Tensor()};
    if (has_uncond) reused.uncond = input + uncond_difference_;
    return reused;
  }
  accumulated_ = 0;
  return std::nullopt;
}

void EasyCache::Computed(const at::Tensor& input, const BranchOutputs& outputs) {
  if (past_end_) return;  // ComfyUI leaves the state as it was past the end
  // The measured branch: the unconditional one where CFG runs it (ComfyUI batches it first).
  const at::Tensor& measured = outputs.uncond.defined() ? outputs.uncond : outputs.cond;
  if (measuring_ && output_mean_.has_value()) {
    const float output_change = MeanAbs(Subsample(measured) - output_before_);
    if (input_change_.has_value()) rate_ = output_change / *input_change_;
  }
  cond_difference_ = outputs.cond - input;
  if (outputs.uncond.defined()) uncond_difference_ = outputs.uncond - input;
  if (!measuring_) return;
  input_before_ = Subsample(input).clone();
  output_before_ = Subsample(measured).clone();
  // Over the whole batch, in ComfyUI's order (uncond, cond).
  output_mean_ = outputs.uncond.defined() ? MeanAbs(at::cat({outputs.uncond, outputs.cond}))
                                          : MeanAbs(outputs.cond);
}

}  // namespace raylight::samplers
