#include "actors/diffusion/image_encoder.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "actors/diffusion/dtype_name.h"
#include "models/wan/wan_conditioning.h"
#include "models/wan/wan_image_inputs.h"
#include "runtime/common/status_macros.h"

namespace raylight::actors {
namespace {

// The image of a job field, or undefined for none.
absl::StatusOr<at::Tensor> ImageOf(const std::string& bytes, const char* field) {
  if (bytes.empty()) return at::Tensor();
  absl::StatusOr<at::Tensor> image = models::wan::ImageFromBytes(bytes);
  if (!image.ok())
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", image.status().message()));
  return image;
}

}  // namespace

absl::StatusOr<EncodedImage> ImageEncoder::Encode(const ImageRequest& request, VideoOutput& vae) {
  const auto start = std::chrono::steady_clock::now();
  models::wan::WanImageRequest inputs_request;
  RL_ASSIGN_OR_RETURN(inputs_request.start_image, ImageOf(request.start, "image"));
  RL_ASSIGN_OR_RETURN(inputs_request.end_image, ImageOf(request.end, "end_image"));
  inputs_request.width = request.width;
  inputs_request.height = request.height;
  inputs_request.length = request.frames;
  EncodedImage encoded;
  absl::MutexLock lock(&mutex_);
  RL_RETURN_IF_ERROR(vae.WithVae(
      request.vae_files, request.dtype, [&](const models::vae::WanVae& loaded) -> absl::Status {
        if (loaded.config().version == 22) {
          // TI2V-5B: the image is the first latent frame, no CLIP.
          RL_ASSIGN_OR_RETURN(models::wan::Wan22StartLatent made,
                              models::wan::MakeWan22StartLatent(inputs_request, loaded));
          encoded.latent = made.samples;
          encoded.noise_mask = made.noise_mask;
          return absl::OkStatus();
        }
        RL_ASSIGN_OR_RETURN(models::vision::ClipVision * clip,
                            clip_.Get(request.clip_vision_files, request.dtype, "clip_vision", [&] {
                              models::vision::ClipVisionOptions options;
                              options.device = device_;
                              options.dtype = request.dtype;
                              return models::vision::ClipVision::Load(request.clip_vision_files,
                                                                      options);
                            }));
        RL_ASSIGN_OR_RETURN(models::wan::WanImageInputs inputs,
                            models::wan::MakeWanImageInputs(inputs_request, loaded, clip));
        encoded.clip_fea = inputs.clip_fea;
        encoded.y = models::wan::WanImageToY(inputs.concat_latent_image, inputs.concat_mask);
        return absl::OkStatus();
      }));
  encoded.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return encoded;
}

std::optional<ModelSummary> ImageEncoder::Summary() {
  absl::MutexLock lock(&mutex_);
  const models::vision::ClipVision* clip = clip_.held();
  if (clip == nullptr) return std::nullopt;
  return SideModelSummary(clip_.files(), "CLIP vision", DtypeName(clip_.dtype()), clip->bytes(),
                          device_.is_cuda());
}

bool ImageEncoder::Evict() {
  absl::MutexLock lock(&mutex_);
  return clip_.Evict();
}

}  // namespace raylight::actors
