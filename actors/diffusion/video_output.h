// A job's decoded output (SampleJob.output) on a worker, torch side: the VAE the job names,
// loaded on the worker's device when an output needs it and kept for the next job (dropped
// first, with the text encoder, when a model needs the room), the decode over the job's group
// (each rank a band of rows, models/vae/row_bands.h), and on rank 0 the frames as the file the
// job asked for (models/vae/video_file.h). A decode alone on a device too full for it runs in
// spatial tiles (models/vae/wan_vae.h's WanVaeTiling) instead of failing. An image family's
// latents (Flux.1's, Chroma's) go through the image VAE's decoder (models/vae/kl_vae.h) on rank
// 0 instead.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "actors/diffusion/diffusion_types.h"
#include "actors/diffusion/loaded_slot.h"
#include "models/parallel/comm/communicator.h"
#include "models/vae/kl_vae.h"
#include "models/vae/wan_vae.h"

namespace raylight::actors {

struct VideoOutputRequest {
  std::string output;  // "video", "webp" or "frames"
  // "wan2.1": a Wan VAE, decoded over the group; "kl": an image VAE's decoder (models/vae/
  // kl_vae.h), on rank 0 (an image's decode is short next to its sampling).
  std::string vae_kind = "wan2.1";
  std::vector<std::string> vae_files;
  double fps = 0;  // 0: the VAE's model's own (16; a 48-channel latent, TI2V-5B: 24)
  int crf = 19;
  at::ScalarType dtype = at::kFloat;
  // The device memory free for the decode (0: unknown). A one-process decode whose estimated
  // peak (WanVae::DecodePeakBytes) exceeds it runs in spatial tiles that fit.
  int64_t free_bytes = 0;
};

struct DecodedOutput {
  std::string file;    // rank 0 only
  std::string format;  // "mp4", "png", "webp", "frames"
  int64_t frames = 0;
  double seconds = 0;
  int64_t tile = 0;  // the tile side in pixels when memory was short; 0: untiled
};

class VideoOutput {
 public:
  explicit VideoOutput(at::Device device) : device_(device) {}

  // `latent`: [N, C, F, h, w] (N results, decoded one after another), the same on every rank of
  // `world`. Collective over `world`.
  absl::StatusOr<DecodedOutput> Decode(const VideoOutputRequest& request, const at::Tensor& latent,
                                       comm::Communicator& world);
  // Runs `use` with the VAE of `files` loaded in `dtype` (encoding images for I2V).
  absl::Status WithVae(const std::vector<std::string>& files, at::ScalarType dtype,
                       absl::FunctionRef<absl::Status(const models::vae::WanVae&)> use);
  // Drops the loaded VAE; true when one was loaded.
  bool Evict();
  // The loaded VAE as the models list shows it; none when none is loaded.
  std::optional<ModelSummary> Summary();

 private:
  absl::StatusOr<models::vae::WanVae*> Loaded(const std::vector<std::string>& files,
                                              at::ScalarType dtype)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // `latent` [N, C, h, w] (or [N, C, 1, h, w]) through the image VAE on rank 0.
  absl::StatusOr<DecodedOutput> DecodeImages(const VideoOutputRequest& request,
                                             const at::Tensor& latent, comm::Communicator& world)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const at::Device device_;
  absl::Mutex mutex_;
  // One VAE at a time: loading either kind drops the other (a worker decodes one family's
  // outputs at a time, and the memory is the next model's).
  LoadedSlot<models::vae::WanVae> vae_ ABSL_GUARDED_BY(mutex_);
  LoadedSlot<models::vae::KlVae> image_vae_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace raylight::actors
