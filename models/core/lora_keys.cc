#include "models/core/lora_keys.h"

#include "absl/strings/match.h"

namespace raylight::models {

bool IsLoraKey(absl::string_view name) {
  for (const LoraUpDown& suffix : kLoraLowRankSuffixes) {
    if (absl::EndsWith(name, suffix.up) || absl::EndsWith(name, suffix.down)) return true;
  }
  for (const auto& [suffix, bias] : kLoraDiffSuffixes) {
    if (absl::EndsWith(name, suffix)) return true;
  }
  return absl::EndsWith(name, ".alpha");
}

bool IsLoraFile(const StHeader& header) {
  for (const StTensorInfo& info : header.tensors) {
    if (IsLoraKey(info.name)) return true;
  }
  return false;
}

}  // namespace raylight::models
