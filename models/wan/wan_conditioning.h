// Wan conditioning files: what a job's prompt is once encoded, as one safetensors file per prompt
// (the positive and the negative each have one). The text encoder (umT5-XXL for Wan) runs outside
// Raylight — in ComfyUI, diffusers or a script — and its output is saved in this layout:
//
//   "text"       [L, text_dim] or [1, L, text_dim]   the encoder's last hidden states for the
//                                                    prompt's L tokens (1 <= L <= 4096; Wan pads
//                                                    to 512 itself; ComfyUI hands over 512 rows,
//                                                    more for longer prompts); text_dim 4096
//   "clip_fea"   [image_tokens, image_dim] or with a leading 1   I2V only: CLIP-vision features of
//                                                    the start image (257 x 1280)
//   "y"          [in_channels - 16, F, H, W] or with a leading 1   I2V only: the mask and the
//                                                    encoded start image, concatenated to x
//   or, as ComfyUI's WanImageToVideo leaves them (I2V, instead of "y"):
//   "concat_latent_image" [16, F, H, W]               the start image's LATENT (the VAE's space)
//   "concat_mask"  [1 or 4, F, H, W] (optional)        0 on the frames the image gives; both are
//                                                    turned into "y" as ComfyUI's concat_cond does
//
// Any float dtype is accepted (bf16 and fp16 as saved by ComfyUI); the tensors are read as fp32.
// Metadata "raylight.conditioning" = "wan/1" marks files made by Raylight's tools (not required).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

struct WanConditioning {
  at::Tensor text;      // [1, L, text_dim]
  at::Tensor clip_fea;  // I2V: [1, image_tokens, image_dim]; undefined otherwise
  at::Tensor y;         // I2V: [1, in_channels - 16, F, H, W]; undefined otherwise
};

// Reads and checks a conditioning file against `config`. Errors name the file and the field:
// a missing or extra tensor, a wrong rank or width, too many tokens, NaN or infinity, an I2V model
// without its image inputs.
absl::StatusOr<WanConditioning> ReadWanConditioning(const std::string& path,
                                                    const WanConfig& config);

// ReadWanConditioning on an in-memory file (a job's payload); `source` names it in errors.
absl::StatusOr<WanConditioning> ParseWanConditioning(absl::string_view bytes,
                                                     const std::string& source,
                                                     const WanConfig& config);
absl::Status WriteWanConditioning(const std::string& path, const WanConditioning& conditioning);

// ComfyUI's image-to-video inputs as Wan's `y` [1, 4 + C, F, H, W], as its WAN21.concat_cond
// builds them for a latent of the image's size: the mask (concat_mask [1, 1 or 4, F, H, W];
// undefined: zeros) averaged over channels, inverted (1 where a frame is given) and repeated to
// 4, then the image latent (concat_latent_image [1, C, F, H, W], the VAE's space) taken into the
// model's space (process_in).
at::Tensor WanImageToY(const at::Tensor& concat_latent_image, const at::Tensor& concat_mask);

// Random conditioning shaped for `config` (for demos and tests with random weights): `tokens`
// text tokens, unit-variance values; I2V also gets CLIP features and a `y` for a latent of
// frames x height x width.
WanConditioning RandomWanConditioning(const WanConfig& config, int64_t tokens, uint64_t seed,
                                      int64_t frames = 1, int64_t height = 8, int64_t width = 8);

}  // namespace raylight::models::wan
