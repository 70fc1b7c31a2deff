// The Wan VAE's RMS norm over channels (F.normalize over dim 1, eps 1e-12, times sqrt(C) times
// gamma), optionally followed by SiLU, as one function: on CUDA one fused kernel
// (channel_norm_cuda.cu; float32 inside, one rounding to the tensor's dtype), elsewhere ATen's
// ops in the reference's order (float32 normalise, then scale and gamma in the tensor's dtype).
#pragma once

#include <ATen/ATen.h>

namespace raylight::models::vae {

// x [B, C, ...] (4-D or 5-D, any strides); gamma holds C values (any shape). A new tensor in x's
// memory format.
at::Tensor ChannelRmsNorm(const at::Tensor& x, const at::Tensor& gamma, bool silu);

// The same, written into `out` (x's shape, dtype and device; any strides, e.g. a slice of a
// larger buffer).
void ChannelRmsNormInto(const at::Tensor& x, const at::Tensor& gamma, bool silu, at::Tensor out);

}  // namespace raylight::models::vae
