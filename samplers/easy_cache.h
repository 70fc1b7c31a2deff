// EasyCache (Zhou et al. 2025, "Less is Enough: Training-Free Video Diffusion Acceleration via
// Runtime-Adaptive Caching") as ComfyUI runs it (comfy_extras/nodes_easycache.py, its EasyCache
// node): whole sampler steps are answered from the last computed one. After a computed step the
// cache keeps each branch's difference between the model's output and its input; a later step's
// outputs are its input plus those differences while the output change it predicts stays small.
// The prediction: the step's input change (mean |x - x at the last computed step| over a 1-in-8
// spatial subsample) times the measured transformation rate k (output change over input change
// between the last two computed steps), over the mean |output| of the last computed step,
// accumulated across reused steps; a step computes when the sum reaches `reuse_threshold`, which
// resets it. Only sigmas from `start_percent` of the schedule on (at or below that percent's
// sigma) may be reused, and steps past `end_percent` always compute and leave the state alone.
//
// ComfyUI measures one branch, the first of the first batch it runs: with CFG that is the
// unconditional one (its batches put the negative prompt first), and the mean |output| covers
// the whole batch, both branches when they are batched together — what is taken here for every
// way of running the branches (batched, one after the other, or on two CFG ranks), so that every
// rank of a group holding the step's outputs takes the same decision. The outputs per branch are
// later ComfyUI's (each branch its own difference; 0.3.64 added both differences to both halves
// of a batch, fixed since) and its model input is the latent only (I2V's image channels are not
// part of x, also as since fixed).
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "samplers/easy_cache_settings.h"
#include "samplers/model_sampling.h"

namespace raylight::samplers {

// The raw model outputs of one sampler evaluation: cond, and uncond when CFG runs one.
struct BranchOutputs {
  at::Tensor cond, uncond;
};

class EasyCache {
 public:
  EasyCache(const EasyCacheSettings& settings, const ModelSampling& sampling,
            EasyCacheStats* stats);

  // At the start of an evaluation at `sigma` with model input `input`: the outputs answered from
  // the cache, or nullopt when the model must run (then Computed follows). `calls` is the number
  // of model calls the evaluation would make here (counted as saved when answered).
  std::optional<BranchOutputs> Reuse(const at::Tensor& input, double sigma, bool has_uncond,
                                     int calls);
  // The evaluation's computed outputs (uncond undefined without CFG).
  void Computed(const at::Tensor& input, const BranchOutputs& outputs);

 private:
  at::Tensor Subsample(const at::Tensor& x) const;

  EasyCacheSettings settings_;
  float start_sigma_, end_sigma_;
  EasyCacheStats* stats_;
  bool measuring_ = false;             // from the first evaluation at or below start_sigma_ on
  bool past_end_ = false;              // this evaluation's
  std::optional<float> input_change_;  // this evaluation's, against the last computed one
  std::optional<float> rate_;          // k
  std::optional<float> output_mean_;   // mean |output| of the last computed evaluation
  float accumulated_ = 0;
  at::Tensor input_before_, output_before_;         // subsampled, of the last computed evaluation
  at::Tensor cond_difference_, uncond_difference_;  // output - input, per branch
};

}  // namespace raylight::samplers
