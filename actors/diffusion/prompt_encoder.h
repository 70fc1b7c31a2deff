// A worker's text encoder (torch side): the umT5 checkpoint a job names, loaded on the worker's
// device when a prompt needs it and kept for the next job, and the encodings it made, cached by
// (encoder files, text) so that a repeated prompt — the negative above all — costs nothing.
// The loaded encoder is the first thing the engine drops when a model needs the room; cached
// encodings are host tensors and stay.
#pragma once

#include <ATen/ATen.h>

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "actors/diffusion/diffusion_types.h"
#include "models/text/umt5_encoder.h"

namespace raylight::actors {

class PromptEncoder {
 public:
  explicit PromptEncoder(at::Device device) : device_(device) {}

  struct Encoded {
    at::Tensor text;  // [1, L, dim] float32 on the CPU: ComfyUI's conditioning
    bool cached = false;
    double seconds = 0;  // load and encode, when not cached
  };
  // `prompt` as typed: Wan's clean-up (whitespace, HTML entities) runs first.
  absl::StatusOr<Encoded> Encode(const std::vector<std::string>& files, const std::string& prompt);
  // Drops the loaded encoder's weights; true when one was loaded.
  bool Evict();
  // The loaded encoder as the models list shows it (its device bytes as the allocator counted
  // them at load); none when none is loaded.
  std::optional<ModelSummary> Summary();

 private:
  static constexpr size_t kMaxCached = 64;  // 64 x 8 MiB at 512 x 4096 float32
  const at::Device device_;
  absl::Mutex mutex_;
  std::vector<std::string> files_ ABSL_GUARDED_BY(mutex_);
  std::unique_ptr<models::text::Umt5Encoder> encoder_ ABSL_GUARDED_BY(mutex_);
  int64_t encoder_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  // Most recently used first.
  std::list<std::pair<std::string, at::Tensor>> recent_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<std::string, std::list<std::pair<std::string, at::Tensor>>::iterator> index_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace raylight::actors
