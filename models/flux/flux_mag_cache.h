// MagCache for Flux.1-dev (models/core/mag_cache.h): the authors' calibrated magnitude ratios
// (MagCache4FLUX: 28 steps, guidance-distilled, one branch) and their settings (threshold 0.24,
// K 5, retention 0.1, their rule: MagCacheRule::kFlux). Torch-free: the head validates a job's
// cache settings with it.
#pragma once

#include <optional>

#include "models/core/mag_cache.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

// The authors' settings for `config` (Flux.1-dev's architecture at its real sizes, dev's name);
// nullopt for other models (schnell, Kontext, Chroma, FLUX.2: calibrated by nobody).
std::optional<MagCacheSettings> PublishedFluxMagCache(const FluxConfig& config);

}  // namespace raylight::models::flux
