#include "models/core/sharded_weights.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace raylight::models {

absl::StatusOr<std::unique_ptr<ShardedWeights>> ShardedWeights::Create(
    const Checkpoint& checkpoint, const BlockLayout& layout, const PlacementOptions& options,
    comm::Communicator& group, const ShardOptions& shards) {
  if (group.device() != options.device) {
    return absl::InvalidArgumentError(absl::StrCat("weights: the FSDP group runs on ",
                                                   group.device().str(), ", the weights on ",
                                                   options.device.str()));
  }
  if (shards.prefetch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: FSDP prefetch ", shards.prefetch, " < 1"));
  }
  std::unique_ptr<ShardedWeights> weights(new ShardedWeights(options, shards));
  auto split = group.Split(/*color=*/0, group.rank());
  if (!split.ok()) return split.status();
  weights->gathers_comm_ = *std::move(split);
  auto flat = FlattenBlocks(checkpoint, layout, options);
  if (!flat.ok()) return flat.status();
  weights->globals_ = std::move(flat->globals);
  weights->blocks_.resize(layout.num_blocks());
  const int64_t ranks = group.size(), rank = group.rank();
  const bool pinned = shards.host_shards && options.device.is_cuda();
  int64_t largest = 0;
  for (int i = 0; i < layout.num_blocks(); ++i) {
    Block& block = weights->blocks_[i];
    block.layout = std::move(flat->blocks[i]);
    block.layout.PadTo(ranks * 16);
    largest = std::max(largest, block.layout.bytes());
    const int64_t shard = block.layout.bytes() / ranks;
    // This rank's bytes only: the parts of the tensors that overlap its range.
    at::Tensor host = HostBytes(shard, pinned);
    block.layout.Fill(flat->sources[i], rank * shard, host);
    block.shard = shards.host_shards ? std::move(host) : host.to(options.device);
  }
  const int buffers = std::min(shards.prefetch + 1, std::max(layout.num_blocks(), 1));
  weights->pool_ = std::make_unique<TransferPool>(buffers, largest, options.device);
  if (shards.host_shards) {
    weights->staging_ =
        at::empty({largest / ranks}, at::TensorOptions().dtype(at::kByte).device(options.device));
  }
  return weights;
}

ShardedWeights::~ShardedWeights() {
  pool_.reset();  // waits for gathers in flight before their communicator goes
}

absl::Status ShardedWeights::Gather(int index) {
  const Block& block = blocks_[index];
  return pool_->Fill(index, [&](at::Tensor& buffer) -> absl::Status {
    at::Tensor source = block.shard;
    if (shards_.host_shards) {
      // On the pool's stream, ordered before the gather that reads it and after the previous
      // gather that read the staging buffer.
      source = staging_.narrow(0, 0, block.shard.numel());
      source.copy_(block.shard, /*non_blocking=*/block.shard.is_pinned());
    }
    at::Tensor out = buffer.narrow(0, 0, block.layout.bytes());
    auto status = gathers_comm_->AllGatherInto(source, out);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("weights: gathering block ", index, ": ", status.message()));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<const WeightSet*> ShardedWeights::Acquire(int index) {
  if (auto valid = CheckBlock(index); !valid.ok()) return valid;
  Block& block = blocks_[index];
  if (block.acquired) return &block.weights;
  if (auto status = Gather(index); !status.ok()) return status;  // a no-op once prefetched
  auto buffer = pool_->Acquire(index);
  if (!buffer.ok()) return buffer.status();
  block.weights =
      block.layout.Unflatten(buffer->narrow(0, 0, block.layout.bytes()), options_.device);
  // The next blocks, wrapping into the next forward, gather while this one computes. Every rank
  // issues the same gathers in the same order.
  const int ahead = std::min(shards_.prefetch, num_blocks() - 1);
  for (int k = 1; k <= ahead; ++k) {
    if (auto status = Gather((index + k) % num_blocks()); !status.ok()) return status;
  }
  block.acquired = true;
  return &block.weights;
}

void ShardedWeights::Release(int index) {
  if (index < 0 || index >= num_blocks() || !blocks_[index].acquired) return;
  Block& block = blocks_[index];
  block.weights = WeightSet();  // views of the pool's buffer, and dequantised fp8 copies
  block.acquired = false;
  pool_->Release(index);
}

int64_t ShardedWeights::shard_bytes() const {
  int64_t total = 0;
  for (const Block& block : blocks_) total += block.shard.nbytes();
  return total;
}

int64_t ShardedWeights::pool_bytes() const {
  return pool_->buffers() * pool_->buffer_bytes() + (staging_.defined() ? staging_.nbytes() : 0);
}

}  // namespace raylight::models
