// Wan's ModelInfo (model_info.h) from its config.
#pragma once

#include "models/family/model_info.h"
#include "models/wan/wan_config.h"

namespace raylight::models {

ModelInfo WanModelInfo(const wan::WanConfig& config);

}  // namespace raylight::models
