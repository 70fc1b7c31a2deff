#include "models/media/video_frames.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace raylight::models::media {

absl::Status CheckVideoFrames(const VideoFrames& frames) {
  constexpr int kMaxSide = 16384;
  if (frames.width < 1 || frames.width > kMaxSide || frames.height < 1 ||
      frames.height > kMaxSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("frames: ", frames.width, "x", frames.height, " is outside 1..", kMaxSide));
  }
  if (frames.count < 1) return absl::InvalidArgumentError("frames: none");
  if (!std::isfinite(frames.fps) || frames.fps <= 0 || frames.fps > 240) {
    return absl::InvalidArgumentError(absl::StrCat("fps: ", frames.fps, " is outside (0, 240]"));
  }
  const uint64_t bytes = uint64_t{3} * frames.width * frames.height * frames.count;
  if (frames.rgb.size() != bytes) {
    return absl::InvalidArgumentError(absl::StrCat("frames: ", frames.rgb.size(), " bytes for ",
                                                   frames.count, " frames of ", frames.width, "x",
                                                   frames.height, " RGB (", bytes, ")"));
  }
  return absl::OkStatus();
}

}  // namespace raylight::models::media
