// Random Wan checkpoints in the real format (real key names, any spelling, any stored dtype,
// fp8 "scaled" included): what tests and GPU benchmarks load, since no real weights can be
// downloaded here. The values are scaled like trained weights (std 1/sqrt(fan_in)) so that
// activations stay in range through every block.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

enum class KeySpelling { kOfficial, kComfyUi, kDiffusers };

struct MakeCheckpointOptions {
  at::ScalarType dtype = at::kBFloat16;  // kFloat, kHalf, kBFloat16, or kFloat8_e4m3fn (scaled)
  KeySpelling spelling = KeySpelling::kOfficial;
  uint64_t seed = 0;
  at::Device device = at::kCPU;  // where the random values are drawn (a GPU is much faster)
};

absl::Status MakeWanCheckpoint(const WanConfig& config, const std::string& path,
                               const MakeCheckpointOptions& options);

}  // namespace raylight::models::wan
