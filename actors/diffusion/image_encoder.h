// A worker's image encoding for I2V jobs (torch side): the CLIP vision tower a job names, loaded
// on the worker's device when an image needs it and kept for the next job (dropped first, with
// the text encoder and the VAE, when a model needs the room), and the start image made into the
// model's image inputs (models/wan/wan_image_inputs.h) with the VAE VideoOutput holds.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "actors/diffusion/loaded_slot.h"
#include "actors/diffusion/video_output.h"
#include "models/vision/clip_vision.h"

namespace raylight::actors {

struct ImageRequest {
  std::string png;  // the start image's file
  std::vector<std::string> vae_files, clip_vision_files;
  int64_t width = 0, height = 0, frames = 0;
  at::ScalarType dtype = at::kFloat;
};

struct EncodedImage {
  at::Tensor clip_fea;  // [1, tokens, width], float32
  at::Tensor y;         // [1, 4 + z, F, h, w], float32 (mask, then the latent in model space)
  double seconds = 0;
};

class ImageEncoder {
 public:
  explicit ImageEncoder(at::Device device) : device_(device) {}

  absl::StatusOr<EncodedImage> Encode(const ImageRequest& request, VideoOutput& vae);
  // Drops the loaded CLIP vision tower; true when one was loaded.
  bool Evict();

 private:
  const at::Device device_;
  absl::Mutex mutex_;
  LoadedSlot<models::vision::ClipVision> clip_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace raylight::actors
