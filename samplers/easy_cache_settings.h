// EasyCache's settings (easy_cache.h), torch-free: the head checks a job's before it queues it.
#pragma once

#include <cmath>
#include <optional>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace raylight::samplers {

struct EasyCacheSettings {
  double reuse_threshold = 0.2;  // ComfyUI's node's defaults
  double start_percent = 0.15;
  double end_percent = 0.95;
  int subsample = 8;  // the spatial stride of the change measurements (the node's)
};

// What a run's cache did, over every run of a job (a two-expert job has two).
struct EasyCacheStats {
  int calls_saved = 0;  // model calls this rank did not make: their evaluations were answered
};

// A job's numbers (threshold 0 and unset percents: the node's defaults), in the ranges ComfyUI's
// node takes them (threshold up to 3, percents in [0, 1]) with the start before the end;
// InvalidArgument naming the field (`cache.threshold`, `cache.start_percent`, ...) otherwise.
inline absl::StatusOr<EasyCacheSettings> MakeEasyCacheSettings(double threshold,
                                                               std::optional<double> start_percent,
                                                               std::optional<double> end_percent) {
  EasyCacheSettings settings;
  if (!(threshold >= 0 && threshold <= 3)) {  // NaN fails too
    return absl::InvalidArgumentError(
        absl::StrCat("cache.threshold: ", threshold, " is outside EasyCache's [0, 3]"));
  }
  if (threshold > 0) settings.reuse_threshold = threshold;
  for (auto [field, given, into] :
       {std::tuple{"cache.start_percent", start_percent, &settings.start_percent},
        std::tuple{"cache.end_percent", end_percent, &settings.end_percent}}) {
    if (!given.has_value()) continue;
    if (!(*given >= 0 && *given <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", *given, " is not a fraction of the schedule in [0, 1]"));
    }
    *into = *given;
  }
  if (!(settings.start_percent < settings.end_percent)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache.end_percent: ", settings.end_percent, " is not after start_percent ",
                     settings.start_percent, " (nothing could be reused)"));
  }
  return settings;
}

}  // namespace raylight::samplers
