// The plain C++ types the DiffusionActor's two halves exchange (DESIGN.md rule 1): the protobuf
// side (diffusion_actor.cc) converts messages to these, the torch side (diffusion_engine.cc)
// computes with them. Neither protobuf nor libtorch here (the mesh shape is torch-free).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/parallel/mesh_plan.h"

namespace raylight::actors {

// A LoRA merged at load: a resolved file and its strength.
struct LoraRequest {
  std::string path;
  double strength = 1.0;
};

struct ModelRequest {
  std::vector<std::string> files;  // resolved checkpoint files (shards of one model)
  std::vector<LoraRequest> loras;  // merged into the weights at load, in order
  std::string dtype = "auto";      // auto, bf16, f16, f32
  std::string placement = "auto";  // auto, resident, fsdp, fsdp-host, swap
  double swap_budget = 0;          // swap: fraction of the blocks' bytes (0: from free memory)
  bool fp8_compute = false;        // the job's compute "fp8" (models/core/fp8_linear.h)
};

struct SampleRequest {
  std::string job_id;
  // Names the job's inputs (its SampleCall's bytes): a journal of the job's model calls is
  // replayed only into a run of the same inputs (model_call_journal.h). 0: no journal.
  uint64_t fingerprint = 0;
  ModelRequest model;
  parallel::MeshShape mesh;
  std::string positive, negative;  // conditioning safetensors bytes
  // Prompts to encode instead (empty: none): with `text_encoder_files`, the umT5 checkpoint.
  std::string prompt, negative_prompt;
  std::vector<std::string> text_encoder_files;
  std::string latent;  // a .latent file's bytes, or empty
  int width = 0, height = 0, frames = 0;
  int steps = 20;
  double cfg = 5.0;
  std::string sampler = "euler";
  std::string scheduler = "simple";
  double shift = 0;  // 0: 5.0
  uint64_t seed = 0;
  std::vector<uint64_t> seeds;
  double denoise = 1.0;
  // KSamplerAdvanced and SamplerCustom (samplers::KSamplerOptions).
  bool add_noise = true;
  int start_step = 0;
  int end_step = 10000;
  bool return_with_leftover_noise = false;
  std::vector<double> sigmas;
  int preview_every = 0;
  // Wan 2.2 A14B: the low-noise expert (no files: a one-model job) and the sigma below which it
  // takes over (0: Wan 2.2's default for the model's kind).
  ModelRequest low_noise_model;
  double boundary = 0;
  // The decoded output (SampleJob.output): "latent" (none), "video", "webp" or "frames", by the
  // VAE in `vae_files`.
  std::string output = "latent";
  std::vector<std::string> vae_files;
  double fps = 0;  // 0: the model's own (16; TI2V-5B: 24)
  int crf = 19;
  // With a prompt, the start and end images' PNG or JPEG bytes (SampleJob.image, end_image),
  // encoded by the VAE in `vae_files` and (I2V) the CLIP vision tower in `clip_vision_files`.
  std::string image, end_image;
  std::vector<std::string> clip_vision_files;
  bool fp8_attention = false;  // SampleJob.attention "fp8" (models/core/fp8_attention.h)
  // SampleJob.cache: "teacache", "magcache" or empty.
  std::string cache_kind;
  double cache_threshold = 0;
  std::vector<double> cache_coefficients;
  bool cache_retention_steps = true;
  int cache_max_skips = 0;
  double cache_retention_ratio = -1;  // unset
  std::vector<double> cache_mag_ratios;
  std::optional<double> cache_start_percent, cache_end_percent;  // easycache
};

struct ModelSummary {
  std::string path;  // the first file
  std::string variant;
  std::string dtype;
  std::string placement;
  int64_t device_bytes = 0;
  int64_t host_bytes = 0;
  int64_t last_used_unix_ms = 0;
};

// A side model (text encoder, CLIP vision tower, VAE) as the models list shows it: kept between
// jobs, unloaded before any diffusion model when one needs the room.
inline ModelSummary SideModelSummary(const std::vector<std::string>& files, std::string variant,
                                     std::string dtype, int64_t device_bytes, bool on_device) {
  ModelSummary summary;
  summary.path = files.empty() ? std::string() : files.front();
  summary.variant = std::move(variant);
  summary.dtype = std::move(dtype);
  summary.placement = "side model (kept between jobs; unloaded first for a model)";
  (on_device ? summary.device_bytes : summary.host_bytes) = device_bytes;
  return summary;
}

struct LoadOutcome {
  ModelSummary model;
  bool already_loaded = false;
  double load_seconds = 0;
};

struct SampleUpdate {
  int step = 0;  // steps done (1-based); 0 for a message
  int total = 0;
  double sigma = 0;
  double elapsed_seconds = 0;
  std::string preview_png;
  std::string message;
};

struct SampleOutcome {
  std::string latent;  // .latent bytes, rank 0 only
  std::string video;   // the decoded output's file, rank 0 only
  std::string video_format;
  double decode_seconds = 0;
  std::string preview_png;
  bool model_was_resident = false;
  double load_seconds = 0;
  double sample_seconds = 0;
  std::string placement;
  int model_calls = 0;
  int calls_reused = 0;  // by the step cache
};

using UpdateFn = std::function<void(const SampleUpdate&)>;
// Rank 0's view of whether the caller cancelled; the ranks agree on it every model call.
using CancelledFn = std::function<bool()>;

}  // namespace raylight::actors
