// Frames of a video as the VAE's decode hands them over (8-bit RGB, row-major, frame after
// frame) and the files they become: MP4 (H.264) and animated WebP. Torch-free.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace raylight::models::media {

struct VideoFrames {
  int width = 0;
  int height = 0;
  int count = 0;
  double fps = 16;           // Wan 2.1 / 2.2 14B: 16; TI2V-5B: 24
  std::vector<uint8_t> rgb;  // count x height x width x 3
};

// Sizes positive and at most 16384, at least one frame, fps in (0, 240], and `rgb` holding
// exactly the frames; errors name the field.
absl::Status CheckVideoFrames(const VideoFrames& frames);

}  // namespace raylight::models::media
