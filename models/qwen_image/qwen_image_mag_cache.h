// MagCache for Qwen-Image (models/core/mag_cache.h): the authors' calibrated magnitude ratios
// for Qwen-Image (MagCache4QwenImage: 50 steps at true CFG 4) and their defaults (threshold 0.06,
// K 2, retention 0.2). Torch-free: the head validates a job's cache settings with it.
#pragma once

#include <optional>

#include "models/core/mag_cache.h"
#include "models/flux/flux_config.h"

namespace raylight::models::qwen_image {

// The authors' settings for `config` (the real Qwen-Image's sizes); nullopt for other sizes.
std::optional<MagCacheSettings> PublishedQwenImageMagCache(const flux::FluxConfig& config);

}  // namespace raylight::models::qwen_image
