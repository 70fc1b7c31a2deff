// Frames from a safetensors file holding ComfyUI's IMAGE: "images" [F, H, W, 3] (or [H, W, 3]),
// float32 / float16 / bfloat16 in [0, 1], or uint8. Floats become bytes as ComfyUI's savers
// make them: clamp(255 x, 0, 255), truncated. Torch-free.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "models/media/video_frames.h"

namespace raylight::models::media {

absl::StatusOr<VideoFrames> ReadFramesFile(const std::string& path, double fps);

}  // namespace raylight::models::media
