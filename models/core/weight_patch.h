// One update to one checkpoint weight, in ComfyUI's arithmetic (comfy/weight_adapter/): a
// low-rank W += s * up @ down (LoCon's middle factor folded into down), LyCORIS LoHa
// W += s * (w1_a @ w1_b) * (w2_a @ w2_b) and LoKr W += s * kron(w1, w2) (each factor given whole or
// as two), a whole-tensor difference W += strength * diff, where s = strength * alpha / rank; and
// with a `dora_scale`, DoRA's weight decomposition (base.py weight_decompose) instead of the sum.
// A patch may cover only some rows of its weight, or give only some rows of its update (`rows`):
// where a checkpoint stores as one matrix what a LoRA names as parts (Flux's fused q, k, v), or
// the reverse, as ComfyUI's offsets (comfy/lora.py calculate_weight) patch a narrowed weight.
// LoRA merges apply these at load; a GGUF weight kept quantised carries them and applies them each
// time its block is dequantised, in the same float32 arithmetic, so that both give the same bits.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace raylight::models {

// Rows [from, from + count) of a patch's update go to rows [into, into + count) of its weight
// (along the first dimension); count < 0: the whole update onto the whole weight.
struct PatchRows {
  int64_t from = 0;
  int64_t into = 0;
  int64_t count = -1;
  bool whole() const { return count < 0; }
};

struct WeightPatch {
  enum class Kind { kLowRank, kDiff, kLoha, kLokr };
  Kind kind = Kind::kLowRank;
  // As the file stores them; the float32 copies are made per use.
  at::Tensor up, down, mid;           // low rank
  at::Tensor diff;                    // whole-tensor difference
  at::Tensor w1_a, w1_b, w2_a, w2_b;  // LoHa's four factors; LoKr's halves given as two
  at::Tensor w1, w2;                  // LoKr's halves given whole
  at::Tensor dora_scale;              // DoRA: the decomposed weight's magnitudes
  double strength = 1.0;
  double alpha = 1.0;  // alpha / rank where the file gives alpha (ComfyUI's `alpha`)
  std::string source;  // "file: key" for errors
  PatchRows rows;
};

// `weight` (float32) after `patch`, computed on `weight`'s device. An error names the patch's
// source when its shapes do not make the weight's (the meta device checks shapes without
// computing).
absl::Status ApplyWeightPatch(at::Tensor& weight, const WeightPatch& patch);

// `rows` (float32): rows [row_begin, row_begin + rows.size(0)) of a weight of `weight_shape`,
// after `patch`, computing only those rows (LoKr's Kronecker product is made whole, then cut):
// the same values as ApplyWeightPatch's for them. False (and `rows` untouched) for DoRA, whose
// rows need the whole updated weight's norms: the caller then merges in full.
absl::StatusOr<bool> ApplyWeightPatchToRows(at::Tensor& rows, const WeightPatch& patch,
                                            int64_t row_begin, at::IntArrayRef weight_shape);

// The patch's tensors on `device` (kept as stored).
WeightPatch PatchOn(const WeightPatch& patch, at::Device device);

}  // namespace raylight::models
