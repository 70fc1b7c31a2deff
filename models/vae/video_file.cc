#include "models/vae/video_file.h"

#include "absl/strings/str_cat.h"
#include "models/core/png.h"
#include "models/core/safetensors_tensors.h"

#ifdef RAYLIGHT_WITH_MEDIA
#include "models/media/mp4_writer.h"
#include "models/media/webp_writer.h"
#endif

namespace raylight::models::vae {
namespace {

#ifdef RAYLIGHT_WITH_MEDIA
media::VideoFrames ToVideoFrames(const at::Tensor& bytes, double fps) {
  media::VideoFrames frames;
  frames.count = static_cast<int>(bytes.size(0));
  frames.height = static_cast<int>(bytes.size(1));
  frames.width = static_cast<int>(bytes.size(2));
  frames.fps = fps;
  const uint8_t* data = bytes.data_ptr<uint8_t>();
  frames.rgb.assign(data, data + bytes.numel());
  return frames;
}
#endif

}  // namespace

absl::Status CheckVideoFileKind(const std::string& kind) {
  if (kind != "video" && kind != "webp" && kind != "frames") {
    return absl::InvalidArgumentError(
        absl::StrCat("output: '", kind, "' is not one of video, webp, frames"));
  }
#ifndef RAYLIGHT_WITH_MEDIA
  if (kind != "frames") {
    return absl::FailedPreconditionError(
        absl::StrCat("output: built without FFmpeg and libwebp (RAYLIGHT_WITH_MEDIA off), so no '",
                     kind, "' files; ask for 'frames' (ComfyUI's IMAGE) instead"));
  }
#endif
  return absl::OkStatus();
}

at::Tensor PixelsToBytes(const at::Tensor& frames) {
  const at::Tensor unit = ((frames.to(at::kFloat) + 1.0) * 0.5).clamp(0.0, 1.0) * 255.0;
  return unit.to(at::kByte).permute({0, 2, 3, 4, 1}).flatten(0, 1).contiguous().to(at::kCPU);
}

absl::StatusOr<VideoFile> EncodeVideoFile(const at::Tensor& frames,
                                          const VideoFileOptions& options) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != at::kByte ||
      frames.size(0) < 1) {
    return absl::InvalidArgumentError("frames: expected uint8 [F, H, W, 3], F >= 1");
  }
  const at::Tensor bytes = frames.contiguous();
  VideoFile file;
  if (options.kind == "frames") {
    file.format = "frames";
    absl::StatusOr<std::string> serialized = SerializeTensors({{"images", bytes}});
    if (!serialized.ok()) return serialized.status();
    file.bytes = *std::move(serialized);
    return file;
  }
  if (options.kind == "video" && bytes.size(0) == 1) {
    RgbImage image;
    image.height = static_cast<int>(bytes.size(1));
    image.width = static_cast<int>(bytes.size(2));
    const uint8_t* data = bytes.data_ptr<uint8_t>();
    image.pixels.assign(data, data + bytes.numel());
    absl::StatusOr<std::string> png = EncodePng(image);
    if (!png.ok()) return png.status();
    file.format = "png";
    file.bytes = *std::move(png);
    return file;
  }
  if (absl::Status kind = CheckVideoFileKind(options.kind); !kind.ok()) return kind;
  absl::StatusOr<std::string> encoded = absl::InternalError("unreachable");
#ifdef RAYLIGHT_WITH_MEDIA
  if (options.kind == "video") {
    media::Mp4Options mp4;
    mp4.crf = options.crf;
    file.format = "mp4";
    encoded = media::EncodeMp4(ToVideoFrames(bytes, options.fps), mp4);
  } else {
    file.format = "webp";
    encoded = media::EncodeAnimatedWebp(ToVideoFrames(bytes, options.fps));
  }
#endif
  if (!encoded.ok()) return encoded.status();
  file.bytes = *std::move(encoded);
  return file;
}

}  // namespace raylight::models::vae
