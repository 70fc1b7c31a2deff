// What a job's prompts and images become before its model loads (torch side): made by rank 0
// alone — a group holds one text encoder, VAE and CLIP vision tower, not one per GPU — and
// broadcast to the group. The prompts' encodings (cached by encoder and text), I2V's `clip_fea`
// and `y` (a start image, an end image for FLF2V), and the starting latent: the job's own, or
// TI2V-5B's made from its start image, with its noise mask.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "actors/diffusion/diffusion_types.h"
#include "actors/diffusion/image_encoder.h"
#include "actors/diffusion/prompt_encoder.h"
#include "actors/diffusion/video_output.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::actors {

struct JobInputs {
  at::Tensor prompt_text, negative_prompt_text;  // [1, L, dim]; undefined: not given as text
  at::Tensor image_clip_fea, image_y;            // I2V / FLF2V; undefined otherwise
  at::Tensor latent, noise_mask;                 // [1, C, F, h, w] (or undefined), its mask
};

// The worker's side models that encode them.
struct SideModels {
  PromptEncoder& prompts;
  ImageEncoder& images;
  VideoOutput& video;
};

// `world`: the group's communicator (made on first use; only when something is encoded).
// `image_dtype`: the dtype images are encoded in (the model's compute dtype). `note`: progress
// lines, rank 0's reach the client. Collective over the group when it encodes anything.
absl::StatusOr<JobInputs> MakeJobInputs(
    const SampleRequest& request, int rank, SideModels side, at::Device device,
    const absl::StatusOr<at::ScalarType>& image_dtype,
    absl::FunctionRef<absl::StatusOr<comm::Communicator*>()> world,
    const std::function<void(std::string)>& note);

}  // namespace raylight::actors
