#include "models/core/sharded_weights.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace raylight::models {
namespace {

constexpr int64_t kAlignment = 16;  // every view(dtype) of the gathered bytes is aligned

int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// The tensor's bytes as a flat u8 view of the mapped file (no copy).
at::Tensor Bytes(const at::Tensor& tensor) { return tensor.contiguous().flatten().view(at::kByte); }

}  // namespace

absl::StatusOr<std::unique_ptr<ShardedWeights>> ShardedWeights::Create(
    const Checkpoint& checkpoint, const BlockLayout& layout, const PlacementOptions& options,
    comm::Communicator& group) {
  if (group.device() != options.device) {
    return absl::InvalidArgumentError(absl::StrCat("weights: the FSDP group runs on ",
                                                   group.device().str(), ", the weights on ",
                                                   options.device.str()));
  }
  std::unique_ptr<ShardedWeights> weights(new ShardedWeights(options, group));
  weights->blocks_.resize(layout.num_blocks);
  std::vector<std::vector<const CheckpointTensor*>> sources(layout.num_blocks);  // per entry
  // checkpoint.tensors is ordered by name, so every rank lays a block out the same way.
  for (const auto& [name, tensor] : checkpoint.tensors) {
    auto owner = BlockOf(name, layout);
    if (!owner.ok()) return owner.status();
    const auto& [index, local] = *owner;
    const bool fp32 = options.keep_fp32 && options.keep_fp32(name);
    const at::ScalarType dtype = fp32 ? at::kFloat : options.compute_dtype;
    if (index < 0) {
      weights->globals_.Set(local, Materialize(tensor, dtype, options.device));
      continue;
    }
    Block& block = weights->blocks_[index];
    Entry entry;
    entry.name = local;
    entry.offset = block.padded_bytes;
    entry.bytes = static_cast<int64_t>(tensor.data.nbytes());
    entry.stored_dtype = tensor.data.scalar_type();
    entry.shape = tensor.data.sizes().vec();
    entry.scale = tensor.scale;
    entry.compute_dtype = dtype;
    block.padded_bytes = RoundUp(entry.offset + entry.bytes, kAlignment);
    block.entries.push_back(std::move(entry));
    sources[index].push_back(&tensor);
  }

  const int64_t ranks = group.size(), rank = group.rank();
  for (int i = 0; i < layout.num_blocks; ++i) {
    Block& block = weights->blocks_[i];
    block.padded_bytes = RoundUp(std::max<int64_t>(block.padded_bytes, 1), ranks * kAlignment);
    const int64_t shard = block.padded_bytes / ranks;
    const int64_t begin = rank * shard, end = begin + shard;
    // This rank's bytes only: the parts of the tensors that overlap [begin, end).
    at::Tensor host = at::zeros({shard}, at::kByte);
    for (size_t e = 0; e < block.entries.size(); ++e) {
      const Entry& entry = block.entries[e];
      const int64_t from = std::max(begin, entry.offset);
      const int64_t to = std::min(end, entry.offset + entry.bytes);
      if (from >= to) continue;
      host.narrow(0, from - begin, to - from)
          .copy_(Bytes(sources[i][e]->data).narrow(0, from - entry.offset, to - from));
    }
    block.shard = host.to(options.device);
  }
  return weights;
}

absl::StatusOr<const WeightSet*> ShardedWeights::Acquire(int index) {
  if (index < 0 || index >= num_blocks()) {
    return absl::OutOfRangeError(absl::StrCat("weights: block ", index, " of ", num_blocks()));
  }
  Block& block = blocks_[index];
  if (block.acquired) return &block.gathered;
  auto full = group_.AllGather(block.shard, 0);
  if (!full.ok()) {
    return absl::Status(full.status().code(), absl::StrCat("weights: gathering block ", index, ": ",
                                                           full.status().message()));
  }
  for (const Entry& entry : block.entries) {
    CheckpointTensor gathered;
    gathered.data =
        full->narrow(0, entry.offset, entry.bytes).view(entry.stored_dtype).view(entry.shape);
    gathered.scale = entry.scale;
    block.gathered.Set(entry.name, Materialize(gathered, entry.compute_dtype, options_.device));
  }
  block.acquired = true;
  return &block.gathered;
}

void ShardedWeights::Release(int index) {
  if (index < 0 || index >= num_blocks()) return;
  Block& block = blocks_[index];
  block.gathered = WeightSet();  // the gathered block goes back to the allocator
  block.acquired = false;
}

int64_t ShardedWeights::shard_bytes() const {
  int64_t total = 0;
  for (const Block& block : blocks_) total += block.shard.nbytes();
  return total;
}

}  // namespace raylight::models
