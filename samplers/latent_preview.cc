#include "samplers/latent_preview.h"

#include "absl/strings/str_cat.h"
#include "runtime/common/status_macros.h"

namespace raylight::samplers {
absl::StatusOr<models::RgbImage> LatentToRgb(const at::Tensor& latent,
                                             const models::LatentFormat& format, int64_t frame) {
  const int64_t channels = format.channels;
  // A format without Latent2RGB factors (FLUX.2's, whose ComfyUI factors map its VAE's 32
  // channels before the 2x2 patching) has no preview here: an error the sampler skips.
  if (static_cast<int64_t>(format.rgb_factors.size()) != channels) {
    return absl::FailedPreconditionError(
        absl::StrCat("preview: latent format '", format.name, "' has ", format.rgb_factors.size(),
                     " Latent2RGB factors for its ", channels, " channels"));
  }
  at::Tensor x = latent.dim() == 5 ? latent[0] : latent;
  // An image latent [B, C, H, W] (Flux) is one frame.
  if (latent.dim() == 4 && latent.size(1) == channels && latent.size(0) != channels) {
    x = latent[0].unsqueeze(1);
  }
  if (x.dim() != 4 || x.size(0) != channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("preview: latent of shape ", c10::str(latent.sizes()),
                     " is not [B, C, T, H, W], [C, T, H, W] or [B, C, H, W] with C = ", channels));
  }
  if (frame < 0 || frame >= x.size(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("preview: frame ", frame, " outside [0, ", x.size(1), ")"));
  }
  // [C, H, W] -> [H, W, C] x [C, 3] -> [H, W, 3], mapped from [-1, 1] to bytes.
  at::Tensor pixels =
      at::matmul(x.select(1, frame).to(at::kCPU, at::kFloat).permute({1, 2, 0}),
                 at::from_blob(const_cast<float*>(format.rgb_factors.data()->data()), {channels, 3},
                               at::kFloat)) +
      at::from_blob(const_cast<float*>(format.rgb_bias.data()), {3}, at::kFloat);
  pixels = ((pixels + 1) * 0.5).clamp(0, 1).mul(255).to(at::kByte).contiguous();  // truncates
  models::RgbImage image;
  image.height = static_cast<int>(pixels.size(0));
  image.width = static_cast<int>(pixels.size(1));
  image.pixels.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
  return image;
}

absl::StatusOr<std::string> LatentPreviewPng(const at::Tensor& latent,
                                             const models::LatentFormat& format, int64_t frame) {
  RL_ASSIGN_OR_RETURN(models::RgbImage image, LatentToRgb(latent, format, frame));
  return models::EncodePng(image);
}

}  // namespace raylight::samplers
