// TeaCache for Flux.1-dev (models/core/tea_cache.h): the authors' fitted rescaling polynomial
// (TeaCache4FLUX) and the threshold ComfyUI-TeaCache recommends for FLUX (0.4, ~2x; the authors
// list 0.25, 0.4, 0.6 and 0.8). The forward measures the first double block's modulated image
// input (flux_model.cc). Torch-free: the head validates a job's cache settings with it.
#pragma once

#include <optional>

#include "models/core/tea_cache.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

// The authors' settings for `config` (Flux.1-dev's architecture at its real sizes, dev's name);
// nullopt for other models (schnell, Chroma, FLUX.2, Qwen-Image: the job gives coefficients).
// The call rule (the first and last call computed) is TeaCacheSettingsOf's (model_info.h).
std::optional<TeaCacheSettings> PublishedFluxTeaCache(const FluxConfig& config);

}  // namespace raylight::models::flux
