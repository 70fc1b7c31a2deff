// Cheap progress previews: a latent's channels mapped to RGB by a fixed linear projection per
// latent format (ComfyUI's Latent2RGB previewer and its latent_rgb_factors), one frame at the
// latent's resolution (1/8 or 1/16 of the video's), as a PNG.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "samplers/png.h"

namespace raylight::samplers {

enum class LatentFormat {
  kWan21,  // 16 channels: Wan 2.1 (all sizes) and Wan 2.2 A14B
  kWan22,  // 48 channels: Wan 2.2 TI2V-5B
};

// The format whose channel count this is; an error names the supported counts.
absl::StatusOr<LatentFormat> LatentFormatForChannels(int64_t channels);

// latent: [B, C, T, H, W] or [C, T, H, W] in the model's latent space (what a sampler's denoised
// estimate is). Renders batch item 0, frame `frame`.
absl::StatusOr<RgbImage> LatentToRgb(const at::Tensor& latent, LatentFormat format,
                                     int64_t frame = 0);

// LatentToRgb then EncodePng.
absl::StatusOr<std::string> LatentPreviewPng(const at::Tensor& latent, LatentFormat format,
                                             int64_t frame = 0);

}  // namespace raylight::samplers
