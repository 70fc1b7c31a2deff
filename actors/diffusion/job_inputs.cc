#include "actors/diffusion/job_inputs.h"

#include "absl/strings/str_cat.h"
#include "actors/diffusion/root_broadcast.h"
#include "models/core/latent_file.h"
#include "runtime/common/status_macros.h"

namespace raylight::actors {

absl::StatusOr<JobInputs> MakeJobInputs(
    const SampleRequest& request, int rank, SideModels side, at::Device device,
    const absl::StatusOr<at::ScalarType>& image_dtype,
    absl::FunctionRef<absl::StatusOr<comm::Communicator*>()> world,
    const std::function<void(std::string)>& note) {
  JobInputs inputs;
  // A starting latent, when given, is read first: its size is the job's.
  if (!request.latent.empty()) {
    RL_ASSIGN_OR_RETURN(models::Latent parsed, models::ParseLatent(request.latent, "latent"));
    inputs.latent = std::move(parsed.samples);
    inputs.noise_mask = std::move(parsed.noise_mask);
    if (inputs.latent.dim() == 4) inputs.latent = inputs.latent.unsqueeze(0);
  }
  // Rank 0's result, or its failure, on every rank.
  auto share = [&](const absl::StatusOr<at::Tensor>& made) -> absl::StatusOr<at::Tensor> {
    RL_ASSIGN_OR_RETURN(comm::Communicator * group, world());
    return BroadcastFromRoot(*group, made, device);
  };
  // Prompts before the model loads (the encoder is dropped first if the model needs its memory).
  auto encode = [&](const std::string& text, const char* what) -> absl::StatusOr<at::Tensor> {
    absl::StatusOr<PromptEncoder::Encoded> encoded =
        absl::FailedPreconditionError("rank 0 could not encode the prompt");
    if (rank == 0) {
      encoded = side.prompts.Encode(request.text_encoder_files, text);
      if (encoded.ok()) {
        note(encoded->cached
                 ? absl::StrCat("the ", what, " prompt's encoding was cached")
                 : absl::StrCat("encoded the ", what, " prompt (", encoded->text.size(1),
                                " tokens) in ", encoded->seconds, " s"));
      }
    }
    return share(encoded.ok() ? absl::StatusOr<at::Tensor>(encoded->text)
                              : absl::StatusOr<at::Tensor>(encoded.status()));
  };
  if (!request.prompt.empty()) {
    RL_ASSIGN_OR_RETURN(inputs.prompt_text, encode(request.prompt, "positive"));
  }
  if (request.cfg != 1.0 && request.negative.empty() && !request.text_encoder_files.empty()) {
    RL_ASSIGN_OR_RETURN(inputs.negative_prompt_text, encode(request.negative_prompt, "negative"));
  }
  if (request.image.empty() && request.end_image.empty()) return inputs;

  // The images, with the VAE (and for I2V the CLIP vision tower). The head refuses a `latent`
  // beside a TI2V start image.
  if (!image_dtype.ok()) return image_dtype.status();
  ImageRequest image{.start = request.image,
                     .end = request.end_image,
                     .vae_files = request.vae_files,
                     .clip_vision_files = request.clip_vision_files,
                     .width = request.width,
                     .height = request.height,
                     .frames = request.frames,
                     .dtype = *image_dtype};
  if (inputs.latent.defined()) {  // the starting latent's size is the video's (Wan 2.1's VAE)
    image.width = inputs.latent.size(4) * 8;
    image.height = inputs.latent.size(3) * 8;
    image.frames = 1 + 4 * (inputs.latent.size(2) - 1);
  }
  absl::StatusOr<EncodedImage> encoded =
      absl::FailedPreconditionError("rank 0 could not encode the image");
  if (rank == 0) {
    encoded = side.images.Encode(image, side.video);
    const char* what = request.end_image.empty() ? "the start image"
                       : request.image.empty()   ? "the end image"
                                                 : "the start and end images";
    if (encoded.ok()) note(absl::StrCat("encoded ", what, " in ", encoded->seconds, " s"));
  }
  // Undefined fields (TI2V has no clip_fea, I2V no latent) arrive undefined.
  auto field = [&](const at::Tensor EncodedImage::*member) {
    return share(encoded.ok() ? absl::StatusOr<at::Tensor>((*encoded).*member)
                              : absl::StatusOr<at::Tensor>(encoded.status()));
  };
  RL_ASSIGN_OR_RETURN(inputs.image_clip_fea, field(&EncodedImage::clip_fea));
  RL_ASSIGN_OR_RETURN(inputs.image_y, field(&EncodedImage::y));
  RL_ASSIGN_OR_RETURN(at::Tensor start_latent, field(&EncodedImage::latent));
  RL_ASSIGN_OR_RETURN(at::Tensor start_mask, field(&EncodedImage::noise_mask));
  if (start_latent.defined()) {
    inputs.latent = std::move(start_latent);
    inputs.noise_mask = std::move(start_mask);
  }
  return inputs;
}

}  // namespace raylight::actors
