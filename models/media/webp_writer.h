// Frames to an animated WebP file's bytes through libwebp (its WebPAnimEncoder): lossless or
// lossy at a quality, each frame shown 1/fps seconds, looping.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "models/media/video_frames.h"

namespace raylight::models::media {

struct WebpOptions {
  bool lossless = false;
  float quality = 90;  // 0..100: lossy quality, or lossless effort
};

absl::StatusOr<std::string> EncodeAnimatedWebp(const VideoFrames& frames,
                                               const WebpOptions& options = {});

}  // namespace raylight::models::media
