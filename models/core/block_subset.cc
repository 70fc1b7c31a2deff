#include "models/core/block_subset.h"

#include <utility>

namespace raylight::models {

BlockSubset::BlockSubset(WeightProvider& base, std::vector<int> blocks)
    : WeightProvider(base.options()), base_(base), blocks_(std::move(blocks)) {
  globals_ = base.globals();
}

absl::StatusOr<const WeightSet*> BlockSubset::Acquire(int index) {
  if (absl::Status status = CheckBlock(index); !status.ok()) return status;
  return base_.Acquire(blocks_[index]);
}

void BlockSubset::Release(int index) {
  if (index >= 0 && index < num_blocks()) base_.Release(blocks_[index]);
}

void BlockSubset::Prefetch(int index) {
  if (index >= 0 && index < num_blocks()) base_.Prefetch(blocks_[index]);
}

}  // namespace raylight::models
