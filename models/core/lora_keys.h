// The key suffixes LoRA files use (ComfyUI's LoRAAdapter.load and load_lora read the same):
// torch-free, so that the head can tell a LoRA file from a model by its header.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "models/core/safetensors.h"

namespace raylight::models {

// A low-rank update's key pair (and LoCon's middle factor where the format has one), in the
// order ComfyUI tries them.
struct LoraUpDown {
  const char* up;
  const char* down;
  const char* mid;
};
inline constexpr LoraUpDown kLoraLowRankSuffixes[] = {
    {".lora_up.weight", ".lora_down.weight", ".lora_mid.weight"},
    {"_lora.up.weight", "_lora.down.weight", nullptr},
    {".lora_B.weight", ".lora_A.weight", nullptr},
    {".lora.up.weight", ".lora.down.weight", nullptr},
    {".lora_B", ".lora_A", nullptr},
    {".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight", nullptr},
    {".lora_B.default.weight", ".lora_A.default.weight", nullptr},
};
// Whole-tensor differences: the suffix, and whether it patches the bias instead of the weight.
inline constexpr std::pair<const char*, bool> kLoraDiffSuffixes[] = {
    {".diff", false}, {".diff_b", true}, {".w_norm", false}, {".b_norm", true}};

// Where a LoRA module's update goes when the checkpoint stores that module's weight in another
// arrangement (Flux's q, k and v fused into one matrix by one spelling and kept apart by another;
// diffusers' (scale, shift) rows where BFL stores (shift, scale)): rows [from, from + count) of the
// update into rows [into, into + count) of `module`'s weight (and bias).
struct LoraRowPiece {
  std::string module;
  int64_t from = 0;
  int64_t into = 0;
  int64_t count = 0;
};
// A checkpoint's such modules (in the model's internal naming) -> their pieces. A family whose
// spellings arrange a weight differently makes one from the checkpoint it opened.
using LoraRowMap = std::map<std::string, std::vector<LoraRowPiece>>;

// Whether `name` is one of a LoRA file's keys (an update factor, LyCORIS's LoHa / LoKr factors, a
// DoRA scale, alpha, or a difference).
bool IsLoraKey(absl::string_view name);
// Whether a safetensors file with this header is a LoRA (any of its keys is one).
bool IsLoraFile(const StHeader& header);

}  // namespace raylight::models
