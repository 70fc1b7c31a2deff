// Wan's ModelInfo (model_info.h) from its config.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/family/model_info.h"
#include "models/wan/wan_config.h"

namespace raylight::models {

ModelInfo WanModelInfo(const wan::WanConfig& config);
absl::StatusOr<ModelInfo> InspectWanModel(const std::vector<std::string>& paths);

}  // namespace raylight::models
