#include "models/core/weight_patch.h"

#include <algorithm>
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

// How many rows the patch's whole update has.
int64_t UpdateRowCount(const WeightPatch& patch) {
  switch (patch.kind) {
    case WeightPatch::Kind::kDiff:
      return patch.diff.dim() >= 1 ? patch.diff.size(0) : 0;
    case WeightPatch::Kind::kLoha:
      return patch.w1_a.dim() >= 1 ? patch.w1_a.size(0) : 0;
    case WeightPatch::Kind::kLokr: {
      auto rows = [](const at::Tensor& whole, const at::Tensor& a) {
        const at::Tensor& t = whole.defined() ? whole : a;
        return t.dim() >= 1 ? t.size(0) : 0;
      };
      return rows(patch.w1, patch.w1_a) * rows(patch.w2, patch.w2_a);
    }
    case WeightPatch::Kind::kLowRank:
      break;
  }
  return patch.up.dim() >= 1 ? patch.up.size(0) : 0;
}

// Rows [begin, begin + target.size(0)) of the update before strength and alpha, shaped as
// `target` (ComfyUI's `lora_diff`); `whole`: the update must have exactly the target's rows.
absl::StatusOr<at::Tensor> UpdateRows(const at::Tensor& target, const WeightPatch& patch,
                                      int64_t begin, bool whole) {
  const at::Device device = target.device();
  if (target.dim() == 0) {  // a scalar parameter: only a whole difference of one value fits
    if (patch.kind != WeightPatch::Kind::kDiff || patch.diff.numel() != 1 || !whole) {
      return Misfit(patch, "factors", target);
    }
    return F32(patch.diff, device).reshape({});
  }
  const int64_t count = target.size(0);
  const int64_t total = UpdateRowCount(patch);
  if (begin < 0 || begin + count > total || (whole && total != count)) {
    return Misfit(
        patch,
        absl::StrCat(total, " update rows", whole ? "" : absl::StrCat(" (from row ", begin, ")")),
        target);
  }
  switch (patch.kind) {
    case WeightPatch::Kind::kDiff: {
      at::Tensor diff = F32(patch.diff.narrow(0, begin, count), device);
      if (diff.sizes() != target.sizes()) {
        return Misfit(patch, absl::StrCat("a difference of ", c10::str(patch.diff.sizes())),
                      target);
      }
      return diff;
    }
    case WeightPatch::Kind::kLoha: {
      at::Tensor m1 =
          at::mm(F32(patch.w1_a.narrow(0, begin, count), device), F32(patch.w1_b, device));
      at::Tensor m2 =
          at::mm(F32(patch.w2_a.narrow(0, begin, count), device), F32(patch.w2_b, device));
      if (m1.sizes() != m2.sizes() || m1.numel() != target.numel()) {
        return Misfit(
            patch,
            absl::StrCat("hada factors of ", c10::str(m1.sizes()), " and ", c10::str(m2.sizes())),
            target);
      }
      return (m1 * m2).reshape(target.sizes());
    }
    case WeightPatch::Kind::kLokr: {
      at::Tensor w1 = Factor(patch.w1, patch.w1_a, patch.w1_b, device);
      at::Tensor w2 = Factor(patch.w2, patch.w2_a, patch.w2_b, device);
      if (w2.dim() == 4) w1 = w1.unsqueeze(2).unsqueeze(2);
      if (w1.dim() != w2.dim() || w1.numel() * w2.numel() * count != target.numel() * total) {
        return Misfit(
            patch,
            absl::StrCat("kron factors of ", c10::str(w1.sizes()), " and ", c10::str(w2.sizes())),
            target);
      }
      return at::kron(w1, w2).narrow(0, begin, count).reshape(target.sizes());
    }
    case WeightPatch::Kind::kLowRank:
      break;
  }
  const at::Tensor up = F32(patch.up, device), down = FoldedDown(patch, device);
  const int64_t rank = down.size(0);
  if (up.dim() < 2 || up.size(1) != rank || down.flatten(1).size(1) * count != target.numel()) {
    return Misfit(patch,
                  absl::StrCat("up ", c10::str(up.sizes()), " and down ", c10::str(down.sizes())),
                  target);
  }
  return at::mm(up.narrow(0, begin, count).flatten(1), down.flatten(1)).reshape(target.sizes());
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
  const PatchRows& rows = patch.rows;
  if (!rows.whole() &&
      (weight.dim() < 1 || rows.into < 0 || rows.into + rows.count > weight.size(0))) {
    return Misfit(patch, absl::StrCat("rows [", rows.into, ", ", rows.into + rows.count, ")"),
                  weight);
  }
  // ComfyUI patches the narrowed weight as if it were the whole one.
  at::Tensor target = rows.whole() ? weight : weight.narrow(0, rows.into, rows.count);
  if (patch.dora_scale.defined() && !rows.whole() && UpdateRowCount(patch) != rows.count) {
    // DoRA's magnitudes are of the module the LoRA was trained on: a part of it cannot be
    // rescaled alone.
    return absl::InvalidArgumentError(
        absl::StrCat("lora ", patch.source,
                     ": a DoRA update of a fused projection onto a checkpoint that stores it as "
                     "parts is not supported"));
  }
  auto difference = UpdateRows(target, patch, rows.whole() ? 0 : rows.from, rows.whole());
  if (!difference.ok()) return difference.status();
  if (patch.dora_scale.defined()) return Decompose(target, *std::move(difference), patch);
  if (patch.kind == WeightPatch::Kind::kDiff) {
    target += *difference * patch.strength;
  } else {
    target += *difference * (patch.strength * patch.alpha);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ApplyWeightPatchToRows(at::Tensor& rows, const WeightPatch& patch,
                                            int64_t row_begin, at::IntArrayRef weight_shape) {
  if (patch.dora_scale.defined()) return false;
  // Checked against the whole weight's shape first, without computing.
  at::Tensor whole = at::empty(weight_shape, at::TensorOptions(at::kMeta).dtype(at::kFloat));
  if (auto status = ApplyWeightPatch(whole, PatchOn(patch, at::kMeta)); !status.ok()) {
    return status;
  }
  // The weight rows the patch covers, within these rows.
  const int64_t covered_begin = patch.rows.whole() ? 0 : patch.rows.into;
  const int64_t covered_end =
      patch.rows.whole() ? weight_shape[0] : covered_begin + patch.rows.count;
  const int64_t begin = std::max(row_begin, covered_begin);
  const int64_t end = std::min(row_begin + rows.size(0), covered_end);
  if (begin >= end) return true;
  at::Tensor target = rows.narrow(0, begin - row_begin, end - begin);
  const int64_t from = (patch.rows.whole() ? 0 : patch.rows.from) + (begin - covered_begin);
  auto difference = UpdateRows(target, patch, from, /*whole=*/false);
  if (!difference.ok()) return difference.status();
  const double scale =
      patch.kind == WeightPatch::Kind::kDiff ? patch.strength : patch.strength * patch.alpha;
  target += *difference * scale;
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
