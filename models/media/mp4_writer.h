// Frames to an MP4 file's bytes: H.264 (libx264) in yuv420p, through FFmpeg's libraries from
// Debian (libavcodec, libavformat, libswscale) — the encoder and muxer every player reads, and
// what ComfyUI's own video nodes use through PyAV. Odd sizes are padded to even by repeating the
// last column or row (4:2:0 chroma needs even sizes).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "models/media/video_frames.h"

namespace raylight::models::media {

struct Mp4Options {
  int crf = 19;                   // x264's constant rate factor: 0 lossless luma .. 51
  std::string preset = "medium";  // x264's speed / size trade-off
};

absl::StatusOr<std::string> EncodeMp4(const VideoFrames& frames, const Mp4Options& options = {});

}  // namespace raylight::models::media
