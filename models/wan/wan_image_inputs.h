// Wan's image inputs as ComfyUI makes them: its WanImageToVideo (I2V: a start image) and
// WanFirstLastFrameToVideo (FLF2V: start and end images) nodes with CLIPVisionEncode. The images
// are scaled to the video's size (ComfyUI's common_upscale: centre crop to the aspect, bilinear),
// placed in a clip of `length` grey frames that the VAE encodes (concat_latent_image), a mask
// marks the given frames (concat_mask), and the CLIP vision tower's penultimate states of each
// image are Wan's clip_fea (start and end concatenated for FLF2V). wan_conditioning.h's
// WanImageToY turns the first two into the DiT's `y`.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "models/core/latent_format.h"
#include "models/vae/wan_vae.h"
#include "models/vision/clip_vision.h"

namespace raylight::models::wan {

struct WanImageInputs {
  at::Tensor concat_latent_image;  // [1, z, F, h, w]: the VAE's latent of the image clip
  at::Tensor concat_mask;          // [1, 1, F, h, w] (I2V) or [1, 4, F, h, w] (FLF2V): 0 = given
  at::Tensor clip_fea;             // [1, 257 (x2 with an end image), width]; undefined without CLIP
};

// ComfyUI's IMAGE [1, H, W, 3] (float in [0, 1]) from PNG or JPEG bytes (core/image_file.h).
absl::StatusOr<at::Tensor> ImageFromBytes(const std::string& bytes);

// ComfyUI's common_upscale(images, width, height, "bilinear", "center") on IMAGE [N, H, W, 3].
at::Tensor CommonUpscaleCenter(const at::Tensor& images, int64_t width, int64_t height);

struct WanImageRequest {
  at::Tensor start_image;  // IMAGE [N, H, W, 3] float in [0, 1]; undefined: none
  at::Tensor end_image;    // FLF2V's; undefined: none (I2V)
  int64_t width = 832, height = 480, length = 81;
  bool clip_crop = true;  // CLIPVisionEncode's "center" crop; false: its "none"
};

// Errors name the field (start_image, end_image, width, height, length).
absl::StatusOr<WanImageInputs> MakeWanImageInputs(const WanImageRequest& request,
                                                  const vae::WanVae& vae,
                                                  const vision::ClipVision* clip_vision);

// Wan 2.2 TI2V-5B's start image as ComfyUI's Wan22ImageToVideoLatent makes it: a LATENT whose
// first frames are the VAE's encoding of the (scaled) start images, held by a noise mask of 0
// there and 1 elsewhere, the rest the latent format's mean (process_out of zero). The DiT then
// sees those frames at timestep 0 (per-token timesteps).
struct Wan22StartLatent {
  at::Tensor samples;     // [1, 48, F, h, w]: the VAE's latent (ComfyUI's LATENT)
  at::Tensor noise_mask;  // [1, 1, F, h, w]: 0 = given
};
absl::StatusOr<Wan22StartLatent> MakeWan22StartLatent(const WanImageRequest& request,
                                                      const vae::WanVae& vae);

}  // namespace raylight::models::wan
