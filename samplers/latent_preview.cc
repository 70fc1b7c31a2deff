#include "samplers/latent_preview.h"

#include "absl/strings/str_cat.h"
#include "models/core/latent_patches.h"
#include "runtime/common/status_macros.h"

namespace raylight::samplers {
absl::StatusOr<models::RgbImage> LatentToRgb(const at::Tensor& latent,
                                             const models::LatentFormat& format, int64_t frame) {
  const int64_t channels = format.channels;
  const int64_t patch = format.rgb_patch;
  const auto factors = static_cast<int64_t>(format.rgb_factors.size());
  // A format without Latent2RGB factors has no preview: an error the sampler skips.
  if (factors * patch * patch != channels) {
    return absl::FailedPreconditionError(absl::StrCat(
        "preview: latent format '", format.name, "' has ", factors, " Latent2RGB factors over ",
        patch, "x", patch, " patches for its ", channels, " channels"));
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
  // [C, H, W] with C = F p^2 unfolded to [F, H p, W p], then [H, W, F] x [F, 3] -> [H, W, 3],
  // mapped from [-1, 1] to bytes.
  const at::Tensor unfolded =
      models::UnfoldLatentPatches(x.select(1, frame).to(at::kCPU, at::kFloat).unsqueeze(0), patch)
          .squeeze(0);
  at::Tensor pixels =
      at::matmul(unfolded.permute({1, 2, 0}),
                 at::from_blob(const_cast<float*>(format.rgb_factors.data()->data()), {factors, 3},
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
