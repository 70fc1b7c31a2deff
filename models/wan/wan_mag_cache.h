// MagCache for Wan (models/core/mag_cache.h): the authors' calibrated magnitude ratios for the
// Wan checkpoints they published them for (MagCache4Wan2.1: t2v 1.3B and 14B over 50 steps, i2v
// 14B at 480p and 720p over 40; MagCache4Wan2.2: A14B's two experts over 40, text- and
// image-to-video, and TI2V-5B over 50, with and without a start image, at their threshold 0.04),
// and a job's settings from them. Torch-free: the head
// validates a job's cache settings with it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/mag_cache.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

// 0 / negative / empty: the authors' (threshold 0.12, K 2, retention 0.2, the model's curve).
using WanMagCacheRequest = MagCacheRequest;

// The settings of a job's MagCache: its own ratios, or the published ones for `config` at
// `width` x `height` (i2v: 720p's at or above 1280x720's area, 480p's below; TI2V-5B: the curve
// for a job with a `start_image` or without; `two_experts`: A14B's, whose experts have 2.1 14B's
// shapes). NotFound for a model nobody calibrated (FLF2V, custom shapes) unless ratios are given;
// InvalidArgument naming the field for numbers out of range.
absl::StatusOr<MagCacheSettings> WanMagCacheSettings(const WanConfig& config, int64_t width,
                                                     int64_t height,
                                                     const WanMagCacheRequest& request,
                                                     bool start_image = false,
                                                     bool two_experts = false);

}  // namespace raylight::models::wan
