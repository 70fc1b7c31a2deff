// Joining two models' inputs into one batch (cond and uncond in one forward, as ComfyUI batches
// them): the helpers every family's BatchInputs uses.
#pragma once

#include <ATen/ATen.h>

namespace raylight::models {

// `a` then `b` along the batch; undefined when either is (an input neither call has).
inline at::Tensor JoinRows(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() && b.defined() ? at::cat({a, b}, 0) : at::Tensor();
}

// A per-sample value given once for a batch (t [1] beside x [B, ...]) as one per sample.
inline at::Tensor PerSample(const at::Tensor& t, const at::Tensor& x) {
  return t.defined() && x.defined() && t.dim() == 1 && t.size(0) == 1 && x.dim() > 0
             ? t.expand({x.size(0)})
             : t;
}

}  // namespace raylight::models
