// The wrappers checkpoints put around a model's own keys. Torch-free: the head's job validation
// reads checkpoint headers with it too.
#pragma once

#include <cstring>
#include <string>

#include "absl/strings/match.h"

namespace raylight::models {

// Strips ComfyUI's all-in-one `model.diffusion_model.` and `diffusion_model.`.
inline std::string StripModelPrefix(const std::string& key) {
  for (const char* prefix : {"model.diffusion_model.", "diffusion_model."}) {
    if (absl::StartsWith(key, prefix)) return key.substr(std::strlen(prefix));
  }
  return key;
}

}  // namespace raylight::models
