#include "actors/diffusion/image_encoder.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "models/core/png.h"
#include "models/wan/wan_conditioning.h"
#include "models/wan/wan_image_inputs.h"
#include "runtime/common/status_macros.h"

namespace raylight::actors {

absl::StatusOr<EncodedImage> ImageEncoder::Encode(const ImageRequest& request, VideoOutput& vae) {
  const auto start = std::chrono::steady_clock::now();
  auto decoded = models::DecodePng(request.png);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("image: ", decoded.status().message()));
  }
  absl::MutexLock lock(&mutex_);
  RL_ASSIGN_OR_RETURN(models::vision::ClipVision * clip,
                      clip_.Get(request.clip_vision_files, request.dtype, "clip_vision", [&] {
                        models::vision::ClipVisionOptions options;
                        options.device = device_;
                        options.dtype = request.dtype;
                        return models::vision::ClipVision::Load(request.clip_vision_files, options);
                      }));
  // ComfyUI's IMAGE: [1, H, W, 3] in [0, 1].
  const at::Tensor bytes =
      at::from_blob(decoded->pixels.data(), {1, decoded->height, decoded->width, 3}, at::kByte);
  models::wan::WanImageRequest inputs_request;
  inputs_request.start_image = bytes.to(at::kFloat) / 255.0;
  inputs_request.width = request.width;
  inputs_request.height = request.height;
  inputs_request.length = request.frames;
  EncodedImage encoded;
  RL_RETURN_IF_ERROR(vae.WithVae(
      request.vae_files, request.dtype, [&](const models::vae::WanVae& loaded) -> absl::Status {
        RL_ASSIGN_OR_RETURN(models::wan::WanImageInputs inputs,
                            models::wan::MakeWanImageInputs(inputs_request, loaded, clip));
        encoded.clip_fea = inputs.clip_fea;
        encoded.y = models::wan::WanImageToY(inputs.concat_latent_image, inputs.concat_mask);
        return absl::OkStatus();
      }));
  encoded.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return encoded;
}

bool ImageEncoder::Evict() {
  absl::MutexLock lock(&mutex_);
  return clip_.Evict();
}

}  // namespace raylight::actors
