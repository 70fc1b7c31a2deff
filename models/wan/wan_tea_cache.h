// TeaCache for Wan (models/core/tea_cache.h): the authors' fitted rescaling polynomials and
// thresholds for the Wan 2.1 checkpoints they calibrated (TeaCache4Wan2.1: t2v 1.3B and 14B,
// i2v 14B at 480p and 720p), with and without their retention steps. Torch-free: the head
// validates a job's cache settings with it.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/tea_cache.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

struct WanTeaCacheRequest {
  double threshold = 0;              // 0: the authors' "slow" (quality) threshold for the model
  std::vector<double> coefficients;  // empty: the authors' for the model
  bool retention_steps = true;       // their use_ret_steps: the modulation e0, 5 retained steps
  int steps = 0;                     // the sampling steps (model calls per branch)
};

// The settings of a job's TeaCache: its own coefficients, or the published ones for `config` at
// `width` x `height` (i2v: 720p's at or above 1280x720's area, 480p's below). NotFound for a model
// nobody calibrated (Wan 2.2, TI2V-5B, FLF2V, custom shapes) unless coefficients are given;
// InvalidArgument for per-token timesteps (TI2V), whose modulation is per token.
absl::StatusOr<TeaCacheSettings> WanTeaCacheSettings(const WanConfig& config, int64_t width,
                                                     int64_t height,
                                                     const WanTeaCacheRequest& request);

}  // namespace raylight::models::wan
