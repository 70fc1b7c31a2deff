// A provider that shows some of another provider's blocks, in order, as a model of fewer blocks:
// a forward through block 0 alone at a job's shape meets every first-call cost of that shape
// (kernel and GEMM plan choice, attention plans, the caching allocator growing to one block's
// activations, which every block reuses) for a fraction of a forward's time, so the warm-up a
// load runs (or a benchmark measures) costs one block, not one step.
#pragma once

#include <vector>

#include "models/core/weights.h"

namespace raylight::models {

class BlockSubset final : public WeightProvider {
 public:
  // `blocks`: indices into `base` (each once, ascending: placements that stream blocks expect
  // them in order). `base` outlives the view.
  BlockSubset(WeightProvider& base, std::vector<int> blocks);
  int num_blocks() const override { return static_cast<int>(blocks_.size()); }
  absl::StatusOr<const WeightSet*> Acquire(int index) override;
  void Release(int index) override;
  void Prefetch(int index) override;

 private:
  WeightProvider& base_;
  std::vector<int> blocks_;
};

}  // namespace raylight::models
