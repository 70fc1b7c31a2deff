// A worker's image encoding for image jobs (torch side): the CLIP vision tower a job names, loaded
// on the worker's device when an image needs it and kept for the next job (dropped first, with
// the text encoder and the VAE, when a model needs the room), and the start (and end) image made
// into the model's image inputs (models/wan/wan_image_inputs.h) with the VAE VideoOutput holds:
// I2V's clip_fea and y, or TI2V-5B's starting latent.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "actors/diffusion/loaded_slot.h"
#include "actors/diffusion/video_output.h"
#include "models/vision/clip_vision.h"

namespace raylight::actors {

struct ImageRequest {
  std::string start, end;  // the images' files (PNG or JPEG); either may be empty, not both
  std::vector<std::string> vae_files, clip_vision_files;
  int64_t width = 0, height = 0, frames = 0;
  at::ScalarType dtype = at::kFloat;
};

// I2V (a Wan 2.1 VAE): clip_fea and y. TI2V-5B (a Wan 2.2 VAE): the starting latent and its
// noise mask.
struct EncodedImage {
  at::Tensor clip_fea;    // [1, tokens, width], float32
  at::Tensor y;           // [1, 4 + z, F, h, w], float32 (mask, then the latent in model space)
  at::Tensor latent;      // [1, 48, F, h, w], float32 (the VAE's latent: ComfyUI's LATENT)
  at::Tensor noise_mask;  // [1, 1, F, h, w], 0 where the image is
  double seconds = 0;
};

class ImageEncoder {
 public:
  explicit ImageEncoder(at::Device device) : device_(device) {}

  absl::StatusOr<EncodedImage> Encode(const ImageRequest& request, VideoOutput& vae);
  // Drops the loaded CLIP vision tower; true when one was loaded.
  bool Evict();
  // The loaded CLIP vision tower as the models list shows it; none when none is loaded.
  std::optional<ModelSummary> Summary();

 private:
  const at::Device device_;
  absl::Mutex mutex_;
  LoadedSlot<models::vision::ClipVision> clip_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace raylight::actors
