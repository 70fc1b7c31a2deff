// Wan VAE configurations (2.1: 16 latent channels, 8x spatial, 4x temporal; 2.2: 48 channels,
// 16x spatial with 2x2 patchified pixels and residual up/down blocks) and their detection from a
// checkpoint's weights. Torch-free: the head checks VAE files without libtorch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models::vae {

struct WanVaeConfig {
  std::string name = "custom";
  // 21: Wan 2.1's plain blocks (also Qwen-Image's VAE); 22: Wan 2.2's residual blocks with the
  // avg-down / dup-up shortcuts and patchified pixels.
  int version = 21;
  int64_t encoder_dim = 96;
  int64_t decoder_dim = 96;
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  // Per encoder level but the last: whether it halves time (the decoder reverses the list).
  std::vector<bool> temporal_downsample = {false, true, true};
  int64_t patch_size = 1;  // pixels folded into channels before the encoder (2.2: 2)
  int64_t image_channels = 3;

  int levels() const { return static_cast<int>(dim_mult.size()); }
  // Pixels per latent pixel along a side, and frames per latent frame after the first.
  int64_t spatial_factor() const;
  int64_t temporal_factor() const;
  // Frames a latent of `latent_frames` decodes to (1 + factor * (T - 1)), and the reverse.
  int64_t DecodedFrames(int64_t latent_frames) const;
  int64_t EncodedFrames(int64_t frames) const;
};

// "wan2.1" (wan_2.1_vae.safetensors; Wan 2.1 and 2.2 A14B) and "wan2.2" (wan2.2_vae.safetensors;
// TI2V-5B); NotFound for other names.
absl::StatusOr<WanVaeConfig> WanVaePreset(const std::string& name);

// The config a checkpoint holds, from its weights' shapes by internal name (wan_vae_keys.h):
// widths from the first and last convolutions, the latent width from the post-quant conv, the
// patch from the input channels, residual blocks and temporal levels from which weights exist.
// Errors name what is missing.
absl::StatusOr<WanVaeConfig> DetectWanVaeConfig(
    const std::map<std::string, std::vector<int64_t>>& shapes);

}  // namespace raylight::models::vae
