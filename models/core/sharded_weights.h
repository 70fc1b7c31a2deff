// FSDP weight placement: every block's weights split 1/N across a group's ranks, gathered for the
// block's forward and freed after (issue #6, first part).
//
// A block's tensors, in their stored dtypes (fp8 stays fp8: half the bytes to move), are laid
// end to end in one flat byte buffer (each tensor 16-byte aligned), padded to divide by N; rank r
// keeps bytes [r S/N, (r+1) S/N) on its device, copied straight from the mapped checkpoint, so no
// process reads or holds more than its shard plus one gathered block. Acquire all-gathers the
// block (a byte copy: the result is bit-identical to the resident weights) and materialises each
// tensor in the compute dtype; Release frees it. Non-block weights are replicated.
//
// Not yet: gathering block i+1 on a side stream while block i computes (Prefetch is a no-op
// here, so on GPU the gathers are not hidden), pinned host shards, and reusing gather buffers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/weights.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::models {

class ShardedWeights final : public WeightProvider {
 public:
  // `group` must outlive the provider; Acquire and Release are collective over it (every rank
  // acquires the same blocks in the same order, as every rank runs the same forward).
  static absl::StatusOr<std::unique_ptr<ShardedWeights>> Create(const Checkpoint& checkpoint,
                                                                const BlockLayout& layout,
                                                                const PlacementOptions& options,
                                                                comm::Communicator& group);

  int num_blocks() const override { return static_cast<int>(blocks_.size()); }
  const WeightSet& globals() const override { return globals_; }
  absl::StatusOr<const WeightSet*> Acquire(int index) override;
  void Release(int index) override;
  at::Device device() const override { return options_.device; }
  at::ScalarType compute_dtype() const override { return options_.compute_dtype; }
  // Bytes this rank keeps for blocks (its shards) and for the replicated globals.
  int64_t shard_bytes() const;
  int64_t global_bytes() const { return globals_.bytes(); }

 private:
  struct Entry {
    std::string name;  // within the block
    int64_t offset = 0;
    int64_t bytes = 0;
    at::ScalarType stored_dtype;
    std::vector<int64_t> shape;
    std::optional<float> scale;
    at::ScalarType compute_dtype;  // what Acquire materialises it as
  };
  struct Block {
    std::vector<Entry> entries;
    int64_t padded_bytes = 0;
    at::Tensor shard;  // this rank's bytes
    WeightSet gathered;
    bool acquired = false;
  };

  ShardedWeights(PlacementOptions options, comm::Communicator& group)
      : options_(std::move(options)), group_(group) {}

  PlacementOptions options_;
  comm::Communicator& group_;
  WeightSet globals_;
  std::vector<Block> blocks_;
};

}  // namespace raylight::models
