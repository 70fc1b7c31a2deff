// The check of an explicit sigma schedule (ComfyUI's SamplerCustom SIGMAS): torch-free and
// header-only, so the head validates a job's `sigmas` with the same rule the sampler applies.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace raylight::samplers {

// 2 to max_steps + 1 finite sigmas, each >= 0, strictly descending; errors name `field` and the
// offending index.
inline absl::Status CheckCustomSigmas(const std::vector<double>& sigmas, int max_steps,
                                      const std::string& field = "sigmas") {
  if (sigmas.size() < 2 || sigmas.size() > static_cast<size_t>(max_steps) + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", sigmas.size(), " given; a schedule has 2 to ", max_steps + 1));
  }
  for (size_t i = 0; i < sigmas.size(); ++i) {
    if (!std::isfinite(sigmas[i]) || sigmas[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: ", sigmas[i], " is not a finite sigma >= 0"));
    }
    if (i > 0 && !(sigmas[i] < sigmas[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: ", sigmas[i], " does not descend from ", sigmas[i - 1]));
    }
  }
  return absl::OkStatus();
}

}  // namespace raylight::samplers
