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
  // LyCORIS LoHa / LoKr factors and DoRA magnitudes.
  for (absl::string_view suffix :
       {".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b", ".lokr_w1", ".lokr_w2",
        ".lokr_w1_a", ".lokr_w1_b", ".lokr_w2_a", ".lokr_w2_b", ".dora_scale"}) {
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
