// One update to one checkpoint weight, as ComfyUI computes it (comfy/weight_adapter/lora.py):
// a low-rank W += scale * up @ down (LoCon's middle factor folded into down), or a full
// difference W += scale * diff. LoRA merges apply these at load; a GGUF weight kept quantised
// carries them and applies them each time its block is dequantised, in the same float32
// arithmetic, so that both give the same bits.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/status.h"

namespace raylight::models {

struct WeightPatch {
  at::Tensor up, down, mid, diff;  // low rank (up, down[, mid]) or diff, as the file stores them
  double scale = 1.0;              // strength, times alpha / rank for a low-rank update
  std::string source;              // "file: key" for errors
};

// `weight` (float32) after `patch`, computed on `weight`'s device. An error names the patch's
// source when its shapes do not make the weight's (checked without computing on the meta device).
absl::Status ApplyWeightPatch(at::Tensor& weight, const WeightPatch& patch);

// The patch's tensors on `device` (kept as stored: their float32 copies are made per use).
WeightPatch PatchOn(const WeightPatch& patch, at::Device device);

}  // namespace raylight::models
