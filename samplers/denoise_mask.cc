#include "samplers/denoise_mask.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace raylight::samplers {

namespace {

absl::Status Bad(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("noise_mask: ", why));
}

std::string Shape(at::IntArrayRef sizes) { return c10::str(sizes); }

}  // namespace

absl::StatusOr<at::Tensor> PrepareDenoiseMask(const at::Tensor& mask, at::IntArrayRef shape) {
  const int64_t dims = static_cast<int64_t>(shape.size()) - 2;
  if (dims != 2 && dims != 3) {
    return Bad(absl::StrCat("a latent of shape ", Shape(shape), " takes no mask"));
  }
  if (!mask.defined() || !at::isFloatingType(mask.scalar_type())) {
    return Bad("must be a floating-point tensor");
  }
  if (mask.dim() < 2 || mask.dim() > dims + 2 || mask.numel() == 0) {
    return Bad(absl::StrCat("has shape ", Shape(mask.sizes()), "; the latent is ", Shape(shape)));
  }
  if (!at::isfinite(mask).all().item<bool>()) return Bad("holds NaN or infinity");
  at::Tensor m = mask.to(at::kFloat);
  const int64_t h = m.size(-2), w = m.size(-1);
  std::vector<int64_t> size(shape.begin() + 2, shape.end());
  if (dims == 2) {
    m = at::upsample_bilinear2d(m.reshape({-1, 1, h, w}), size, /*align_corners=*/false);
  } else {
    if (m.dim() < 5) m = m.reshape({1, 1, -1, h, w});
    m = at::upsample_trilinear3d(m, size, /*align_corners=*/false);
  }
  const int64_t channels = shape[1], batch = shape[0];
  if (m.size(1) != 1 && m.size(1) != channels) {
    return Bad(absl::StrCat("has ", m.size(1), " channels; the latent has ", channels));
  }
  if (m.size(1) < channels) {
    std::vector<int64_t> repeats(m.dim(), 1);
    repeats[1] = channels;
    m = m.repeat(repeats);
  }
  // comfy.utils.repeat_to_batch_size: cut a longer batch, repeat a shorter one.
  if (m.size(0) > batch) {
    m = m.narrow(0, 0, batch);
  } else if (m.size(0) < batch) {
    std::vector<int64_t> repeats(m.dim(), 1);
    repeats[0] = (batch + m.size(0) - 1) / m.size(0);
    m = m.repeat(repeats).narrow(0, 0, batch);
  }
  return m.contiguous();
}

Denoiser InpaintDenoiser(Denoiser inner, at::Tensor mask, at::Tensor latent_image, at::Tensor noise,
                         const ModelSampling& sampling, InpaintInput input) {
  at::Tensor kept = 1.0 - mask;
  return [inner = std::move(inner), mask = std::move(mask), kept = std::move(kept),
          latent_image = std::move(latent_image), noise = std::move(noise), &sampling,
          input](const at::Tensor& x, double sigma) -> absl::StatusOr<at::Tensor> {
    const at::Tensor given = input == InpaintInput::kClean
                                 ? latent_image
                                 : sampling.NoiseScaling(sigma, noise, latent_image, false);
    // ComfyUI's order of operations, so that the blends round as its do.
    auto out = inner(x * mask + given * kept, sigma);
    if (!out.ok()) return out.status();
    return *out * mask + latent_image * kept;
  };
}

at::Tensor FrameTimestepScale(const at::Tensor& prepared_mask) {
  return at::mean(prepared_mask.to(at::kFloat), {1, 3, 4});
}

}  // namespace raylight::samplers
