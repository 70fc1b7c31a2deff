// Cheap progress previews: a latent's channels mapped to RGB by its format's fixed linear
// projection (ComfyUI's Latent2RGB previewer and its latent_rgb_factors,
// models/core/latent_format.h), one frame at the latent's resolution (1/8 or 1/16 of the video's),
// as a PNG.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "models/core/latent_format.h"
#include "models/core/png.h"

namespace raylight::samplers {

// latent: [B, C, T, H, W] or [C, T, H, W] in the model's space (what a sampler's denoised
// estimate is). Renders batch item 0, frame `frame`.
absl::StatusOr<models::RgbImage> LatentToRgb(const at::Tensor& latent,
                                             const models::LatentFormat& format, int64_t frame = 0);

// LatentToRgb then EncodePng.
absl::StatusOr<std::string> LatentPreviewPng(const at::Tensor& latent,
                                             const models::LatentFormat& format, int64_t frame = 0);

}  // namespace raylight::samplers
