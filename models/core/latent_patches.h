// Latents whose channels hold p x p patches of a finer latent (FLUX.2's 128 = its VAE's 32 in 2x2
// patches): channel c p^2 + i p + j of cell (h, w) is channel c at (h p + i, w p + j), the order
// of diffusers' Flux2Pipeline._patchify_latents and ComfyUI's latent_rgb_factors_reshape.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace raylight::models {

// [B, C p^2, h, w] -> [B, C, h p, w p].
at::Tensor UnfoldLatentPatches(const at::Tensor& x, int64_t patch);

// [B, C, H, W] (H and W multiples of p) -> [B, C p^2, H / p, W / p].
at::Tensor FoldLatentPatches(const at::Tensor& x, int64_t patch);

}  // namespace raylight::models
