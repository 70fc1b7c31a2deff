#include "models/core/weight_patch.h"

#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace raylight::models {
namespace {

absl::Status Misfit(const WeightPatch& patch, const std::string& what, const at::Tensor& weight) {
  return absl::InvalidArgumentError(absl::StrCat(
      "lora ", patch.source, ": ", what, " do not make the weight's ", c10::str(weight.sizes())));
}

at::Tensor F32(const at::Tensor& tensor, at::Device device) {
  return tensor.to(device, at::kFloat);
}

// The product of two factors, or the factor given whole.
at::Tensor Factor(const at::Tensor& whole, const at::Tensor& a, const at::Tensor& b,
                  at::Device device) {
  return whole.defined() ? F32(whole, device) : at::mm(F32(a, device), F32(b, device));
}

// A low-rank update's down factor in float32, LoCon's middle factor folded in as ComfyUI folds it.
at::Tensor FoldedDown(const WeightPatch& patch, at::Device device) {
  at::Tensor down = F32(patch.down, device);
  if (!patch.mid.defined()) return down;
  at::Tensor mid = F32(patch.mid, device);
  std::vector<int64_t> shape = {down.size(1), down.size(0), mid.size(2), mid.size(3)};
  return at::mm(down.transpose(0, 1).flatten(1), mid.transpose(0, 1).flatten(1))
      .reshape(shape)
      .transpose(0, 1);
}

// The update before strength and alpha, shaped as the weight (ComfyUI's `lora_diff`).
absl::StatusOr<at::Tensor> Difference(const at::Tensor& weight, const WeightPatch& patch) {
  const at::Device device = weight.device();
  switch (patch.kind) {
    case WeightPatch::Kind::kDiff:
      return F32(patch.diff, device);
    case WeightPatch::Kind::kLoha: {
      at::Tensor m1 = at::mm(F32(patch.w1_a, device), F32(patch.w1_b, device));
      at::Tensor m2 = at::mm(F32(patch.w2_a, device), F32(patch.w2_b, device));
      if (m1.sizes() != m2.sizes() || m1.numel() != weight.numel()) {
        return Misfit(
            patch,
            absl::StrCat("hada factors of ", c10::str(m1.sizes()), " and ", c10::str(m2.sizes())),
            weight);
      }
      return (m1 * m2).reshape(weight.sizes());
    }
    case WeightPatch::Kind::kLokr: {
      at::Tensor w1 = Factor(patch.w1, patch.w1_a, patch.w1_b, device);
      at::Tensor w2 = Factor(patch.w2, patch.w2_a, patch.w2_b, device);
      if (w2.dim() == 4) w1 = w1.unsqueeze(2).unsqueeze(2);
      if (w1.dim() != w2.dim() || w1.numel() * w2.numel() != weight.numel()) {
        return Misfit(
            patch,
            absl::StrCat("kron factors of ", c10::str(w1.sizes()), " and ", c10::str(w2.sizes())),
            weight);
      }
      return at::kron(w1, w2).reshape(weight.sizes());
    }
    case WeightPatch::Kind::kLowRank:
      break;
  }
  const at::Tensor up = F32(patch.up, device), down = FoldedDown(patch, device);
  const int64_t rank = down.size(0);
  if (up.dim() < 2 || up.size(1) != rank || up.size(0) != weight.size(0) ||
      down.flatten(1).size(1) * up.size(0) != weight.numel()) {
    return Misfit(patch,
                  absl::StrCat("up ", c10::str(up.sizes()), " and down ", c10::str(down.sizes())),
                  weight);
  }
  return at::mm(up.flatten(1), down.flatten(1)).reshape(weight.sizes());
}

// DoRA (ComfyUI's weight_decompose): the updated weight rescaled to `dora_scale`'s magnitudes,
// per output row when dora_scale has one value per row (whose norm ComfyUI takes of the weight
// before the update), else per input column of the updated weight.
absl::Status Decompose(at::Tensor& weight, at::Tensor difference, const WeightPatch& patch) {
  const at::Tensor scale = F32(patch.dora_scale, weight.device());
  difference.mul_(patch.alpha);
  at::Tensor updated = weight + difference;
  if (scale.dim() < 1) return Misfit(patch, "a dora_scale with no dimensions", weight);
  const bool per_row = scale.size(0) == updated.size(0);
  std::vector<int64_t> ones(weight.dim() - 1, 1);
  at::Tensor norm;
  if (per_row) {
    std::vector<int64_t> shape = {weight.size(0)};
    shape.insert(shape.end(), ones.begin(), ones.end());
    norm = weight.reshape({weight.size(0), -1}).norm(2, {1}, true).reshape(shape);
  } else {
    std::vector<int64_t> shape = {updated.size(1)};
    shape.insert(shape.end(), ones.begin(), ones.end());
    norm = updated.transpose(0, 1)
               .reshape({updated.size(1), -1})
               .norm(2, {1}, true)
               .reshape(shape)
               .transpose(0, 1);
  }
  norm = norm + std::numeric_limits<float>::epsilon();
  updated *= scale / norm;
  if (patch.strength != 1.0) {
    updated -= weight;
    weight += patch.strength * updated;
  } else {
    weight.copy_(updated);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyWeightPatch(at::Tensor& weight, const WeightPatch& patch) {
  auto difference = Difference(weight, patch);
  if (!difference.ok()) return difference.status();
  if (difference->sizes() != weight.sizes()) {
    return Misfit(patch, absl::StrCat("a difference of ", c10::str(difference->sizes())), weight);
  }
  if (patch.dora_scale.defined()) return Decompose(weight, *std::move(difference), patch);
  if (patch.kind == WeightPatch::Kind::kDiff) {
    weight += *difference * patch.strength;
  } else {
    weight += *difference * (patch.strength * patch.alpha);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ApplyWeightPatchToRows(at::Tensor& rows, const WeightPatch& patch,
                                            int64_t row_begin, at::IntArrayRef weight_shape) {
  if (patch.dora_scale.defined() || patch.kind == WeightPatch::Kind::kLokr) return false;
  // Checked against the whole weight's shape first, without computing.
  at::Tensor whole = at::empty(weight_shape, at::TensorOptions(at::kMeta).dtype(at::kFloat));
  if (auto status = ApplyWeightPatch(whole, PatchOn(patch, at::kMeta)); !status.ok()) {
    return status;
  }
  const at::Device device = rows.device();
  const int64_t count = rows.size(0);
  at::Tensor difference;
  switch (patch.kind) {
    case WeightPatch::Kind::kDiff:
      rows += F32(patch.diff.narrow(0, row_begin, count), device) * patch.strength;
      return true;
    case WeightPatch::Kind::kLoha:
      difference =
          at::mm(F32(patch.w1_a.narrow(0, row_begin, count), device), F32(patch.w1_b, device)) *
          at::mm(F32(patch.w2_a.narrow(0, row_begin, count), device), F32(patch.w2_b, device));
      break;
    case WeightPatch::Kind::kLowRank:
      difference = at::mm(F32(patch.up.narrow(0, row_begin, count), device).flatten(1),
                          FoldedDown(patch, device).flatten(1));
      break;
    case WeightPatch::Kind::kLokr:
      return false;
  }
  rows += difference.reshape(rows.sizes()) * (patch.strength * patch.alpha);
  return true;
}

WeightPatch PatchOn(const WeightPatch& patch, at::Device device) {
  WeightPatch moved = patch;
  for (at::Tensor* tensor :
       {&moved.up, &moved.down, &moved.mid, &moved.diff, &moved.w1_a, &moved.w1_b, &moved.w2_a,
        &moved.w2_b, &moved.w1, &moved.w2, &moved.dora_scale}) {
    if (tensor->defined()) *tensor = tensor->to(device);
  }
  return moved;
}

}  // namespace raylight::models
