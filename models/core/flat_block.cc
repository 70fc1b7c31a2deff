#include "models/core/flat_block.h"

#include <algorithm>
#include <numeric>

#include "models/core/fp8_linear.h"
#include "runtime/common/round_up.h"

namespace raylight::models {
namespace {

constexpr int64_t kAlignment = 16;

}  // namespace

int FlatBlock::Add(std::string name, const CheckpointTensor& tensor, bool fp32,
                   const PlacementOptions& options) {
  if (PlacedAsFp8Linear(name, tensor, /*in_block=*/true, fp32, options)) {
    const std::vector<int64_t> shape = tensor.value_shape();
    Entry values{.name = name, .role = Role::kFp8Values};
    Entry scales{.name = Fp8ScaleName(name), .role = Role::kFp8Scales};
    values.stored_dtype = values.compute_dtype = at::kFloat8_e4m3fn;
    scales.stored_dtype = scales.compute_dtype = at::kFloat;
    values.quantised_from = scales.quantised_from = options.compute_dtype;
    values.shape = shape;
    scales.shape = {shape[0]};
    values.bytes = shape[0] * shape[1];
    scales.bytes = shape[0] * static_cast<int64_t>(sizeof(float));
    Append(std::move(values));
    Append(std::move(scales));
    return 2;
  }
  Entry entry;
  entry.name = std::move(name);
  entry.compute_dtype = fp32 ? at::kFloat : options.compute_dtype;
  entry.stored_dtype = PlacedDtype(tensor, /*in_block=*/true, fp32, options);
  // Kept as stored (fp8, GGUF blocks): dequantised after the transfer.
  const bool encoded = tensor.encoded() && entry.stored_dtype == tensor.data.scalar_type();
  if (encoded) {
    entry.encoding = CheckpointTensor{.scale = tensor.scale, .gguf = tensor.gguf};
    // Every rank applies the whole patch to the gathered weight: the LoRA factors are small and
    // replicated, on the device once.
    for (const WeightPatch& patch : tensor.patches) {
      entry.encoding->patches.push_back(PatchOn(patch, options.device));
    }
  }
  // Encoded: the stored bytes as they are; otherwise the values in the stored dtype.
  entry.shape = encoded ? tensor.data.sizes().vec() : tensor.value_shape();
  entry.bytes = (encoded ? tensor.data.numel() : tensor.value_numel()) *
                static_cast<int64_t>(c10::elementSize(entry.stored_dtype));
  Append(std::move(entry));
  return 1;
}

void FlatBlock::Append(Entry entry) {
  entry.offset = RoundUp(bytes_, kAlignment);
  bytes_ = entry.offset + entry.bytes;
  entries_.push_back(std::move(entry));
}

void FlatBlock::PadTo(int64_t multiple) {
  bytes_ = RoundUp(std::max<int64_t>(bytes_, 1), std::lcm(multiple, kAlignment));
}

void FlatBlock::Fill(const std::vector<const CheckpointTensor*>& sources, int64_t begin,
                     at::Tensor& out) const {
  const int64_t end = begin + out.numel();
  out.zero_();
  for (size_t e = 0; e < entries_.size(); ++e) {
    const Entry& entry = entries_[e];
    const int64_t from = std::max(begin, entry.offset);
    const int64_t to = std::min(end, entry.offset + entry.bytes);
    if (from >= to) continue;
    const CheckpointTensor& source = *sources[e];
    if (entry.role != Role::kTensor) {
      const at::Tensor rows = Fp8RowsOf(entry, source, from, to);
      out.narrow(0, from - begin, to - from).copy_(rows);
      continue;
    }
    // fp8 and GGUF blocks move as stored; everything else as its compute dtype (scaled weights
    // not kept in fp8 are dequantised here, once). One tensor converted at a time: never a whole
    // block in RAM. A tensor with attached LoRA patches is merged only in the rows this range
    // covers (an FSDP rank's shard), where the patches' form allows.
    int64_t first_byte = 0;  // of `stored` within the entry
    at::Tensor stored;
    if (entry.encoding) {
      stored = source.data;
    } else if (source.patches.empty() || entry.shape.empty() || entry.shape[0] < 2) {
      stored = Materialize(source, entry.stored_dtype, at::kCPU);
    } else {
      const int64_t row_bytes = entry.bytes / entry.shape[0];
      const int64_t first_row = (from - entry.offset) / row_bytes;
      const int64_t end_row = (to - entry.offset + row_bytes - 1) / row_bytes;
      stored = MaterializeRows(source, first_row, end_row, entry.stored_dtype);
      first_byte = first_row * row_bytes;
    }
    at::Tensor bytes = stored.contiguous().flatten().view(at::kByte);
    out.narrow(0, from - begin, to - from)
        .copy_(bytes.narrow(0, from - entry.offset - first_byte, to - from));
  }
}

at::Tensor FlatBlock::Fp8RowsOf(const Entry& entry, const CheckpointTensor& source, int64_t from,
                                int64_t to) const {
  // The rows of the weight that bytes [from, to) of the entry cover, as ResidentWeights places
  // them (PlaceFp8Rows).
  const int64_t row_bytes = entry.bytes / entry.shape[0];
  const int64_t first_row = (from - entry.offset) / row_bytes;
  const int64_t end_row = (to - entry.offset + row_bytes - 1) / row_bytes;
  const Fp8Rows rows = PlaceFp8Rows(source, entry.quantised_from, at::kCPU, first_row, end_row);
  const at::Tensor part = entry.role == Role::kFp8Values ? rows.values : rows.scale;
  const at::Tensor bytes = part.contiguous().flatten().view(at::kByte);
  return bytes.narrow(0, from - entry.offset - first_row * row_bytes, to - from);
}

WeightSet FlatBlock::Unflatten(const at::Tensor& buffer, at::Device device) const {
  WeightSet weights;
  for (const Entry& entry : entries_) {
    at::Tensor view =
        buffer.narrow(0, entry.offset, entry.bytes).view(entry.stored_dtype).view(entry.shape);
    if (!entry.encoding) {
      weights.Set(entry.name, std::move(view));
      continue;
    }
    CheckpointTensor encoded = *entry.encoding;
    encoded.data = std::move(view);
    weights.Set(entry.name, Materialize(encoded, entry.compute_dtype, device));
  }
  return weights;
}

absl::StatusOr<FlatModel> FlattenBlocks(const Checkpoint& checkpoint, const BlockLayout& layout,
                                        const PlacementOptions& options) {
  FlatModel model;
  model.blocks.resize(layout.num_blocks());
  model.sources.resize(layout.num_blocks());
  // checkpoint.tensors is ordered by name, so every rank lays a block out the same way.
  for (const auto& [name, tensor] : checkpoint.tensors) {
    auto owner = BlockOf(name, layout);
    if (!owner.ok()) return owner.status();
    const auto& [index, local] = *owner;
    const bool fp32 = options.keep_fp32 && options.keep_fp32(name);
    if (index < 0) {
      model.globals.Set(
          local, Materialize(tensor, fp32 ? at::kFloat : options.compute_dtype, options.device));
      continue;
    }
    const int entries = model.blocks[index].Add(local, tensor, fp32, options);
    model.sources[index].insert(model.sources[index].end(), entries, &tensor);
  }
  return model;
}

}  // namespace raylight::models
