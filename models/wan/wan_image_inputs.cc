#include "models/wan/wan_image_inputs.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "models/core/image_file.h"

namespace raylight::models::wan {
namespace {

using at::Tensor;

absl::Status CheckImage(const Tensor& image, const char* field) {
  if (image.dim() != 4 || image.size(3) < 3 || image.size(0) < 1 || image.size(1) < 1 ||
      image.size(2) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected an IMAGE [N, H, W, 3], got ", c10::str(image.sizes())));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(const WanImageRequest& request, int64_t factor) {
  if (request.width < factor || request.width % factor != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("width: ", request.width, " is not a positive multiple of ", factor));
  }
  if (request.height < factor || request.height % factor != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("height: ", request.height, " is not a positive multiple of ", factor));
  }
  if (request.length < 1) return absl::InvalidArgumentError("length: at least one frame");
  return absl::OkStatus();
}

// ComfyUI's VAE wrapper: IMAGE [N, H, W, 3] in [0, 1] to a video [1, 3, N, H, W] in [-1, 1].
Tensor ImagesToVideo(const Tensor& images) {
  return (images * 2.0 - 1.0).permute({3, 0, 1, 2}).unsqueeze(0);
}

}  // namespace

absl::StatusOr<at::Tensor> ImageFromBytes(const std::string& bytes) {
  absl::StatusOr<RgbImage> decoded = DecodeImage(bytes);
  if (!decoded.ok()) return decoded.status();
  return at::from_blob(decoded->pixels.data(), {1, decoded->height, decoded->width, 3}, at::kByte)
             .to(at::kFloat) /
         255.0;
}

Tensor CommonUpscaleCenter(const Tensor& images, int64_t width, int64_t height) {
  Tensor s = images.permute({0, 3, 1, 2}).to(at::kFloat);
  const int64_t old_width = s.size(3), old_height = s.size(2);
  const double old_aspect = static_cast<double>(old_width) / old_height;
  const double new_aspect = static_cast<double>(width) / height;
  int64_t x = 0, y = 0;
  // Python's round(): ties to even.
  if (old_aspect > new_aspect) {
    x = static_cast<int64_t>(
        std::nearbyint((old_width - old_width * (new_aspect / old_aspect)) / 2));
  } else if (old_aspect < new_aspect) {
    y = static_cast<int64_t>(
        std::nearbyint((old_height - old_height * (old_aspect / new_aspect)) / 2));
  }
  s = s.narrow(2, y, old_height - 2 * y).narrow(3, x, old_width - 2 * x).contiguous();
  const Tensor out = at::upsample_bilinear2d(s, {height, width}, /*align_corners=*/false);
  return out.permute({0, 2, 3, 1});
}

absl::StatusOr<WanImageInputs> MakeWanImageInputs(const WanImageRequest& request,
                                                  const vae::WanVae& vae,
                                                  const vision::ClipVision* clip_vision) {
  const int64_t factor = vae.config().spatial_factor();
  if (absl::Status s = CheckSize(request, factor); !s.ok()) return s;
  if (!request.start_image.defined() && !request.end_image.defined()) {
    return absl::InvalidArgumentError("start_image: no image given");
  }
  if (request.start_image.defined()) {
    if (absl::Status s = CheckImage(request.start_image, "start_image"); !s.ok()) return s;
  }
  if (request.end_image.defined()) {
    if (absl::Status s = CheckImage(request.end_image, "end_image"); !s.ok()) return s;
  }
  try {
    const int64_t length = request.length;
    const int64_t latent_frames = (length - 1) / 4 + 1;
    const int64_t h = request.height / factor, w = request.width / factor;
    Tensor clip = at::full({length, request.height, request.width, 3}, 0.5);
    Tensor start, end;
    WanImageInputs out;
    if (!request.end_image.defined()) {
      // WanImageToVideo: the first images, the mask 0 on the latent frames they fill.
      start = CommonUpscaleCenter(request.start_image.narrow(3, 0, 3).narrow(
                                      0, 0, std::min(request.start_image.size(0), length)),
                                  request.width, request.height);
      clip.narrow(0, 0, start.size(0)).copy_(start);
      out.concat_mask = at::ones({1, 1, latent_frames, h, w});
      out.concat_mask.narrow(2, 0, (start.size(0) - 1) / 4 + 1).zero_();
    } else {
      // WanFirstLastFrameToVideo: a mask per pixel frame (the first latent frame counts four),
      // folded into four channels.
      Tensor mask = at::ones({1, 1, latent_frames * 4, h, w});
      if (request.start_image.defined()) {
        start = CommonUpscaleCenter(request.start_image.narrow(3, 0, 3).narrow(
                                        0, 0, std::min(request.start_image.size(0), length)),
                                    request.width, request.height);
        clip.narrow(0, 0, start.size(0)).copy_(start);
        mask.narrow(2, 0, std::min(start.size(0) + 3, latent_frames * 4)).zero_();
      }
      const int64_t n = std::min(request.end_image.size(0), length);
      end = CommonUpscaleCenter(
          request.end_image.narrow(3, 0, 3).narrow(0, request.end_image.size(0) - n, n),
          request.width, request.height);
      clip.narrow(0, length - n, n).copy_(end);
      mask.narrow(2, mask.size(2) - n, n).zero_();
      out.concat_mask = mask.view({1, latent_frames, 4, h, w}).transpose(1, 2).contiguous();
    }
    absl::StatusOr<Tensor> latent = vae.Encode(ImagesToVideo(clip));
    if (!latent.ok()) return latent.status();
    out.concat_latent_image = latent->to(at::kCPU);
    if (clip_vision != nullptr) {
      std::vector<Tensor> states;
      // One image each (ComfyUI's CLIPVisionEncode of a one-image batch): the first start
      // image, the last end image.
      for (const Tensor* image : {&request.start_image, &request.end_image}) {
        if (!image->defined()) continue;
        const Tensor one = image == &request.start_image ? image->narrow(0, 0, 1)
                                                         : image->narrow(0, image->size(0) - 1, 1);
        absl::StatusOr<Tensor> pixels = clip_vision->Preprocess(one, request.clip_crop);
        if (!pixels.ok()) return pixels.status();
        absl::StatusOr<vision::ClipVisionOutput> encoded = clip_vision->Encode(*pixels);
        if (!encoded.ok()) return encoded.status();
        states.push_back(encoded->penultimate.to(at::kCPU));
      }
      out.clip_fea = at::cat(states, 1);
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("image inputs: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<Wan22StartLatent> MakeWan22StartLatent(const WanImageRequest& request,
                                                      const vae::WanVae& vae) {
  if (absl::Status s = CheckSize(request, vae.config().spatial_factor()); !s.ok()) return s;
  if (!request.start_image.defined()) {
    return absl::InvalidArgumentError("start_image: no image given");
  }
  if (absl::Status s = CheckImage(request.start_image, "start_image"); !s.ok()) return s;
  if (request.end_image.defined()) {
    return absl::InvalidArgumentError("end_image: Wan 2.2 TI2V takes a start image only");
  }
  absl::StatusOr<const LatentFormat*> format = LatentFormatForChannels(vae.config().z_dim);
  if (!format.ok()) return format.status();
  try {
    const int64_t factor = vae.config().spatial_factor();
    const int64_t frames = (request.length - 1) / 4 + 1;
    Tensor latent =
        at::zeros({1, vae.config().z_dim, frames, request.height / factor, request.width / factor});
    Tensor mask = at::ones({1, 1, frames, latent.size(3), latent.size(4)});
    const Tensor start =
        CommonUpscaleCenter(request.start_image.narrow(3, 0, 3).narrow(
                                0, 0, std::min(request.start_image.size(0), request.length)),
                            request.width, request.height);
    absl::StatusOr<Tensor> encoded = vae.Encode(ImagesToVideo(start));
    if (!encoded.ok()) return encoded.status();
    const int64_t given = encoded->size(2);
    latent.narrow(2, 0, given).copy_(encoded->to(at::kCPU));
    mask.narrow(2, 0, given).zero_();
    Wan22StartLatent out;
    out.samples = ProcessOut(**format, latent) * mask + latent * (1.0 - mask);
    out.noise_mask = mask;
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("start latent: ", e.what_without_backtrace()));
  }
}

}  // namespace raylight::models::wan
