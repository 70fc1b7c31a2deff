// Layer swap (issue #6): a device budget for one model's blocks; the blocks that fit stay on the
// device, the others live in pinned host memory and stream into a fixed pool of device buffers
// on a copy stream, `prefetch` streamed blocks ahead of the one running (models/core/
// placement_plan.h decides which blocks stay and the order; transfer_pool.h orders copies and
// compute by events). The order is a ring: the last blocks of a forward fetch the first streamed
// blocks of the next. fp8 weights cross PCIe as fp8.
//
// Loading reads each streamed block from the mapped checkpoint straight into its pinned buffer;
// no other host copy of the model is made.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/flat_block.h"
#include "models/core/placement_plan.h"
#include "models/core/transfer_pool.h"
#include "models/core/weights.h"

namespace raylight::models {

struct SwapOptions {
  // Device bytes for blocks (resident ones plus the buffer pool); `budget_fraction` of the
  // blocks' bytes when `budget_bytes` is 0.
  int64_t budget_bytes = 0;
  double budget_fraction = 0.5;
  int prefetch = 1;
  // The naive offload, kept as the benchmark's anchor: pageable host memory, copied on the compute
  // stream when the block is needed (no overlap). Never chosen by the planner.
  bool synchronous = false;
};

class SwappedWeights final : public WeightProvider {
 public:
  static absl::StatusOr<std::unique_ptr<SwappedWeights>> Create(const Checkpoint& checkpoint,
                                                                const BlockLayout& layout,
                                                                const PlacementOptions& options,
                                                                const SwapOptions& swap);

  int num_blocks() const override { return static_cast<int>(blocks_.size()); }
  absl::StatusOr<const WeightSet*> Acquire(int index) override;
  void Release(int index) override;

  const SwapPlan& plan() const { return plan_; }
  // Bytes on the device (resident blocks, the buffer pool, globals) and in host memory.
  int64_t device_bytes() const;
  int64_t host_bytes() const;
  // Copies issued to the device so far (each streamed block once per forward once warm).
  int64_t fetches() const { return pool_ ? pool_->fills() : 0; }

 private:
  struct Block {
    FlatBlock layout;
    at::Tensor resident;  // on the device, or
    at::Tensor host;      // in (pinned) host memory
    WeightSet weights;    // between Acquire and Release
    bool acquired = false;
  };
  explicit SwappedWeights(PlacementOptions options) : WeightProvider(std::move(options)) {}
  absl::Status Fetch(int index);

  SwapPlan plan_;
  bool synchronous_ = false;
  std::vector<Block> blocks_;
  std::unique_ptr<TransferPool> pool_;  // none when every block is resident
};

}  // namespace raylight::models
