#include "models/media/webp_writer.h"

#include <webp/encode.h>
#include <webp/mux.h>

#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"

namespace raylight::models::media {

absl::StatusOr<std::string> EncodeAnimatedWebp(const VideoFrames& frames,
                                               const WebpOptions& options) {
  if (auto valid = CheckVideoFrames(frames); !valid.ok()) return valid;
  if (frames.width > WEBP_MAX_DIMENSION || frames.height > WEBP_MAX_DIMENSION) {
    return absl::InvalidArgumentError(
        absl::StrCat("frames: WebP takes at most ", WEBP_MAX_DIMENSION, " pixels a side"));
  }
  if (!(options.quality >= 0 && options.quality <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("quality: ", options.quality, " is outside 0..100"));
  }
  WebPAnimEncoderOptions encoder_options;
  if (!WebPAnimEncoderOptionsInit(&encoder_options)) {
    return absl::InternalError("webp: libwebp version mismatch");
  }
  encoder_options.anim_params.loop_count = 0;  // forever
  std::unique_ptr<WebPAnimEncoder, void (*)(WebPAnimEncoder*)> encoder(
      WebPAnimEncoderNew(frames.width, frames.height, &encoder_options), WebPAnimEncoderDelete);
  if (encoder == nullptr) return absl::InternalError("webp: cannot make an encoder");
  WebPConfig config;
  if (!WebPConfigInit(&config)) return absl::InternalError("webp: libwebp version mismatch");
  config.lossless = options.lossless ? 1 : 0;
  config.quality = options.quality;
  const size_t frame_bytes = static_cast<size_t>(frames.width) * frames.height * 3;
  for (int i = 0; i <= frames.count; ++i) {
    // Frame i starts at i / fps; the last call (no picture) ends the last frame.
    const int timestamp_ms = static_cast<int>(std::lround(i * 1000.0 / frames.fps));
    if (i == frames.count) {
      if (!WebPAnimEncoderAdd(encoder.get(), nullptr, timestamp_ms, nullptr)) {
        return absl::InternalError(absl::StrCat("webp: ", WebPAnimEncoderGetError(encoder.get())));
      }
      break;
    }
    WebPPicture picture;
    if (!WebPPictureInit(&picture)) return absl::InternalError("webp: libwebp version mismatch");
    picture.use_argb = 1;
    picture.width = frames.width;
    picture.height = frames.height;
    const bool imported =
        WebPPictureImportRGB(&picture, frames.rgb.data() + i * frame_bytes, frames.width * 3);
    const bool added =
        imported && WebPAnimEncoderAdd(encoder.get(), &picture, timestamp_ms, &config);
    WebPPictureFree(&picture);
    if (!added) {
      return absl::InternalError(
          absl::StrCat("webp: frame ", i, ": ", WebPAnimEncoderGetError(encoder.get())));
    }
  }
  WebPData data;
  WebPDataInit(&data);
  if (!WebPAnimEncoderAssemble(encoder.get(), &data)) {
    return absl::InternalError(absl::StrCat("webp: ", WebPAnimEncoderGetError(encoder.get())));
  }
  std::string bytes(reinterpret_cast<const char*>(data.bytes), data.size);
  WebPDataClear(&data);
  return bytes;
}

}  // namespace raylight::models::media
