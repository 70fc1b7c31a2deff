#include "models/core/tea_cache.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace raylight::models {

absl::Status ValidateTeaCacheSettings(const TeaCacheSettings& settings) {
  if (!std::isfinite(settings.threshold) || settings.threshold < 0 || settings.threshold > 10) {
    return absl::InvalidArgumentError(
        absl::StrCat("threshold: ", settings.threshold, " is outside [0, 10]"));
  }
  if (settings.coefficients.size() > 8) {
    return absl::InvalidArgumentError(absl::StrCat("coefficients: ", settings.coefficients.size(),
                                                   " of them; a polynomial of at most 8"));
  }
  for (double c : settings.coefficients) {
    if (!std::isfinite(c)) return absl::InvalidArgumentError("coefficients: not finite");
  }
  return absl::OkStatus();
}

double TeaCachePolicy::Rescale(double rel_l1) const {
  if (settings_.coefficients.empty()) return rel_l1;
  double value = 0;  // Horner, highest power first
  for (double c : settings_.coefficients) value = value * rel_l1 + c;
  return value;
}

bool TeaCachePolicy::ShouldCompute(int call, double rel_l1) {
  if (call < settings_.retention_calls || call >= settings_.cutoff_call) {
    accumulated_ = 0;
    return true;
  }
  accumulated_ += Rescale(rel_l1);
  if (accumulated_ < settings_.threshold) {
    ++reused_;
    return false;
  }
  accumulated_ = 0;
  return true;
}

}  // namespace raylight::models
