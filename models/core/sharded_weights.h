// FSDP weight placement (issue #6): every block's weights split 1/N across a group's ranks,
// gathered for the block's forward into a fixed pool of buffers, `prefetch` blocks ahead.
//
// A block is one flat byte layout (flat_block.h: compute dtype, fp8 kept fp8 so that half the
// bytes move), padded to divide by N; rank r keeps bytes [r S/N, (r+1) S/N), copied straight
// from the mapped checkpoint, so no process reads or holds more than its shard plus the pool.
// Acquire(i) waits for block i's gather (a byte copy: the weights are bit-identical to the
// resident ones) and starts the gathers of the next blocks, wrapping into the next forward; on a
// GPU they run on a side stream (transfer_pool.h) while block i computes. The gathers use a
// communicator of their own (a split of the group), so they never interleave with the sampling's
// collectives on the compute stream. Non-block weights are replicated.
//
// With host shards each rank keeps its shard in pinned host memory; a gather first copies it to
// the device, on the same side stream, ahead of use.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/flat_block.h"
#include "models/core/transfer_pool.h"
#include "models/core/weights.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::models {

struct ShardOptions {
  int prefetch = 1;  // blocks gathered ahead of the running one (the pool holds prefetch + 1)
  bool host_shards = false;
};

class ShardedWeights final : public WeightProvider {
 public:
  // Collective over `group` (it splits a communicator off for the gathers), which must outlive
  // the provider. Every rank then acquires the same blocks in the same order, as every rank runs
  // the same forwards.
  static absl::StatusOr<std::unique_ptr<ShardedWeights>> Create(const Checkpoint& checkpoint,
                                                                const BlockLayout& layout,
                                                                const PlacementOptions& options,
                                                                comm::Communicator& group,
                                                                const ShardOptions& shards = {});
  ~ShardedWeights() override;

  int num_blocks() const override { return static_cast<int>(blocks_.size()); }
  absl::StatusOr<const WeightSet*> Acquire(int index) override;
  void Release(int index) override;
  // Bytes this rank keeps for blocks (its shards, on the device or in host memory), for the
  // replicated globals, and for the gather buffers.
  int64_t shard_bytes() const;
  int64_t global_bytes() const { return globals_.bytes(); }
  int64_t pool_bytes() const;
  bool host_shards() const { return shards_.host_shards; }
  // Gathers issued so far (a block prefetched and then acquired counts once).
  int64_t gathers() const { return pool_ ? pool_->fills() : 0; }

 private:
  struct Block {
    FlatBlock layout;
    at::Tensor shard;  // this rank's bytes: on the device, or pinned on the host
    WeightSet weights;
    bool acquired = false;
  };

  ShardedWeights(PlacementOptions options, ShardOptions shards)
      : WeightProvider(std::move(options)), shards_(shards) {}
  absl::Status Gather(int index);

  ShardOptions shards_;
  std::unique_ptr<comm::Communicator> gathers_comm_;
  std::vector<Block> blocks_;
  std::unique_ptr<TransferPool> pool_;
  at::Tensor staging_;  // host shards: the device copy a gather sends from
};

}  // namespace raylight::models
