#include "models/core/weights.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "models/core/fp8_linear.h"

namespace raylight::models {

const at::Tensor& WeightSet::Get(absl::string_view name) const {
  static const at::Tensor kUndefined;
  auto it = tensors_.find(name);
  return it == tensors_.end() ? kUndefined : it->second;
}

int64_t WeightSet::bytes() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : tensors_) total += tensor.nbytes();
  return total;
}

at::ScalarType PlacedDtype(const CheckpointTensor& tensor, bool in_block, bool fp32,
                           const PlacementOptions& options) {
  if (in_block && tensor.encoded() && options.keep_fp8 && !fp32) return tensor.data.scalar_type();
  return fp32 ? at::kFloat : options.compute_dtype;
}

bool PlacedAsFp8Linear(const std::string& name_in_block, const CheckpointTensor& tensor,
                       bool in_block, bool fp32, const PlacementOptions& options) {
  return options.fp8_compute && in_block && !fp32 &&
         IsFp8Linear(name_in_block, tensor.value_shape());
}

absl::StatusOr<std::pair<int, std::string>> BlockOf(const std::string& name,
                                                    const BlockLayout& layout) {
  int first = 0;  // the flat index of the segment's block 0
  for (const BlockSegment& segment : layout.segments) {
    if (name.rfind(segment.prefix, 0) == 0) {
      const std::string rest = name.substr(segment.prefix.size());
      const size_t dot = rest.find('.');
      int index = -1;
      if (dot == std::string::npos || !absl::SimpleAtoi(rest.substr(0, dot), &index) || index < 0 ||
          index >= segment.count) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights: '", name, "' names no block in [0, ", segment.count, ")"));
      }
      return std::make_pair(first + index, rest.substr(dot + 1));
    }
    first += segment.count;
  }
  return std::make_pair(-1, name);
}

absl::StatusOr<std::unique_ptr<ResidentWeights>> ResidentWeights::Create(
    const Checkpoint& checkpoint, const BlockLayout& layout, const PlacementOptions& options) {
  std::unique_ptr<ResidentWeights> weights(new ResidentWeights(options));
  weights->blocks_.resize(layout.num_blocks());
  // Places one tensor whose stored bytes are `tensor.data` (on the device already, or the
  // mapped file's view on the CPU).
  auto place = [&](const std::string& name, const CheckpointTensor& tensor) -> absl::Status {
    const bool fp32 = options.keep_fp32 && options.keep_fp32(name);
    auto owner = BlockOf(name, layout);
    if (!owner.ok()) return owner.status();
    const auto& [index, local] = *owner;
    Block* block = index >= 0 ? &weights->blocks_[index] : nullptr;
    const at::ScalarType dtype = PlacedDtype(tensor, block != nullptr, fp32, options);
    if (PlacedAsFp8Linear(local, tensor, block != nullptr, fp32, options)) {
      Fp8Rows rows = PlaceFp8Rows(tensor, options.compute_dtype, options.device);
      block->ready.Set(Fp8ScaleName(local), std::move(rows.scale));
      block->ready.Set(local, std::move(rows.values));
      return absl::OkStatus();
    }
    if (tensor.encoded() && dtype == tensor.data.scalar_type()) {  // kept as stored
      CheckpointTensor on_device = tensor;
      on_device.data = tensor.data.to(options.device);  // still fp8 or GGUF blocks
      for (WeightPatch& patch : on_device.patches) patch = PatchOn(patch, options.device);
      block->fp8.emplace(local, std::move(on_device));
      return absl::OkStatus();
    }
    at::Tensor placed = Materialize(tensor, dtype, options.device);
    if (block != nullptr) {
      block->ready.Set(local, std::move(placed));
    } else {
      weights->globals_.Set(local, std::move(placed));
    }
    return absl::OkStatus();
  };
  if (!options.device.is_cuda()) {  // the CPU computes on the mapped file's views
    for (const auto& [name, tensor] : checkpoint.tensors) {
      if (absl::Status placed = place(name, tensor); !placed.ok()) return placed;
    }
    return weights;
  }
  // The stored bytes cross to the GPU through pinned staging buffers read in parallel
  // (staged_upload.h); each tensor is placed from its device copy as soon as it has crossed.
  std::vector<const std::pair<const std::string, CheckpointTensor>*> entries;
  std::vector<at::Tensor> sources;
  for (const auto& entry : checkpoint.tensors) {
    entries.push_back(&entry);
    sources.push_back(entry.second.data.contiguous());
  }
  const absl::Status uploaded = UploadStaged(
      sources, options.device, StagedUploadOptions{},
      [&](int i, at::Tensor copy) {
        CheckpointTensor on_device = entries[i]->second;
        on_device.data = std::move(copy);
        return place(entries[i]->first, on_device);
      },
      &weights->upload_);
  if (!uploaded.ok()) return uploaded;
  return weights;
}

absl::Status WeightProvider::CheckBlock(int index) const {
  if (index < 0 || index >= num_blocks()) {
    return absl::OutOfRangeError(absl::StrCat("weights: block ", index, " of ", num_blocks()));
  }
  return absl::OkStatus();
}

absl::StatusOr<const WeightSet*> ResidentWeights::Acquire(int index) {
  if (auto valid = CheckBlock(index); !valid.ok()) return valid;
  Block& block = blocks_[index];
  if (block.fp8.empty()) return &block.ready;
  if (!block.acquired) {
    block.dequantised = block.ready;
    for (const auto& [name, tensor] : block.fp8) {
      block.dequantised.Set(name, Materialize(tensor, options_.compute_dtype, options_.device));
    }
    block.acquired = true;
  }
  return &block.dequantised;
}

void ResidentWeights::Release(int index) {
  if (index < 0 || index >= num_blocks()) return;
  Block& block = blocks_[index];
  if (block.fp8.empty() || !block.acquired) return;
  block.dequantised = WeightSet();  // the dequantised copies go back to the allocator
  block.acquired = false;
}

int64_t ResidentWeights::resident_bytes() const {
  int64_t total = globals_.bytes();
  for (const Block& block : blocks_) {
    total += block.ready.bytes();
    for (const auto& [name, tensor] : block.fp8) total += tensor.data.nbytes();
  }
  return total;
}

}  // namespace raylight::models
