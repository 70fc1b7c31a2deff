// ComfyUI's LATENT noise mask (inpainting, and Wan 2.2 TI2V's start image): where it is 1 the
// latent is sampled, where 0 it is kept. Each model call sees the kept part from the starting
// latent and its estimate is blended back there (comfy/samplers.py KSamplerX0Inpaint).
#pragma once

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "samplers/k_samplers.h"
#include "samplers/model_sampling.h"

namespace raylight::samplers {

// The mask at the latent's shape [B, C, (F,) H, W], as comfy/sampler_helpers.py prepare_mask
// makes it: a mask of fewer dimensions than a video latent is read as [1, 1, frames, h, w], then
// resized (bilinear / trilinear, align_corners false), repeated over channels and batch. Errors
// name `noise_mask`.
absl::StatusOr<at::Tensor> PrepareDenoiseMask(const at::Tensor& mask, at::IntArrayRef shape);

// How the kept part enters a model call: ComfyUI's default (scale_latent_inpaint) re-noises the
// starting latent to the call's sigma with the run's initial noise; Wan 2.2's 48-channel model
// (WAN22) takes it clean and tells the model per frame how much is noise (FrameTimestepScale).
enum class InpaintInput { kRenoised, kClean };

// The denoiser of a masked run: `mask` is PrepareDenoiseMask's, `latent_image` the starting
// latent in the model's space, `noise` the run's initial noise (zeros without add_noise).
Denoiser InpaintDenoiser(Denoiser inner, at::Tensor mask, at::Tensor latent_image, at::Tensor noise,
                         const ModelSampling& sampling, InpaintInput input);

// WAN22.process_timestep: the timestep a video frame sees is the call's timestep times the
// frame's mean mask over channels, height and width. Returns those means [B, F] (float32).
at::Tensor FrameTimestepScale(const at::Tensor& prepared_mask);

}  // namespace raylight::samplers
