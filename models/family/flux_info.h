// Flux's ModelInfo (model_info.h) from its config.
#pragma once

#include "models/family/model_info.h"
#include "models/flux/flux_config.h"

namespace raylight::models {

ModelInfo FluxModelInfo(const flux::FluxConfig& config);

}  // namespace raylight::models
