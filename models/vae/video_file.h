// Decoded frames to the file a user asked for: MP4 (H.264) or animated WebP through
// models/media (FFmpeg's libraries, libwebp; only where RAYLIGHT_WITH_MEDIA is on), a PNG for a
// single frame, or ComfyUI's IMAGE as safetensors ("images" [F, H, W, 3] uint8). Shared by the
// workers' job outputs and raylight-vae.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"

namespace raylight::models::vae {

struct VideoFileOptions {
  std::string kind = "video";  // "video" (MP4; one frame: PNG), "webp", "frames"
  double fps = 16;
  int crf = 19;
};

// FailedPrecondition when this build cannot write `kind` (no FFmpeg / libwebp), InvalidArgument
// for an unknown kind.
absl::Status CheckVideoFileKind(const std::string& kind);

// Pixels in [-1, 1] [B, 3, n, H, W] (any device) -> bytes [B * n, H, W, 3] on the CPU, as
// ComfyUI's VAE wrapper and image savers make them: (x + 1) / 2 clamped, times 255, truncated.
at::Tensor PixelsToBytes(const at::Tensor& frames);

struct VideoFile {
  std::string bytes;
  std::string format;  // "mp4", "png", "webp", "frames"
};
// `frames`: bytes [F, H, W, 3] uint8 on the CPU.
absl::StatusOr<VideoFile> EncodeVideoFile(const at::Tensor& frames,
                                          const VideoFileOptions& options);

}  // namespace raylight::models::vae
