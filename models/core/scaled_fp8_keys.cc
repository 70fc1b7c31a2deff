#include "models/core/scaled_fp8_keys.h"

#include <cstring>

#include "absl/strings/match.h"

namespace raylight::models {

std::optional<std::string> ScaledWeightName(const std::string& key) {
  for (const char* suffix : {".scale_weight", ".weight_scale"}) {
    if (absl::EndsWith(key, suffix)) {
      return key.substr(0, key.size() - std::strlen(suffix)) + ".weight";
    }
  }
  return std::nullopt;
}

bool IsDroppedScaleKey(const std::string& key) {
  return key == "scaled_fp8" || absl::EndsWith(key, ".scaled_fp8") ||
         absl::EndsWith(key, ".scale_input") || absl::EndsWith(key, ".input_scale");
}

}  // namespace raylight::models
