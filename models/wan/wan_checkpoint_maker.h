// Random Wan checkpoints in the real format (real key names, any spelling, any stored dtype,
// fp8 "scaled" included): what tests and GPU benchmarks load, since no real weights can be
// downloaded here. The values are scaled like trained weights (std 1/sqrt(fan_in)) so that
// activations stay in range through every block. GGUF checkpoints hold random quantisation blocks
// (gguf_random.h) in the block matrices, laid out as city96's converter does.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "models/core/ggml_type.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

enum class KeySpelling { kOfficial, kComfyUi, kDiffusers };

struct MakeCheckpointOptions {
  at::ScalarType dtype = at::kBFloat16;  // kFloat, kHalf, kBFloat16, or kFloat8_e4m3fn (scaled)
  KeySpelling spelling = KeySpelling::kOfficial;
  uint64_t seed = 0;
  at::Device device = at::kCPU;  // where the random values are drawn (a GPU is much faster)
  // A GGUF file instead of safetensors: the blocks' matrices in this type (random blocks), the
  // other tensors in F32 (1-D, modulation) or F16.
  std::optional<GgmlType> gguf;
};

absl::Status MakeWanCheckpoint(const WanConfig& config, const std::string& path,
                               const MakeCheckpointOptions& options);

}  // namespace raylight::models::wan
