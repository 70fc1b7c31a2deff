#include "models/core/swapped_weights.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace raylight::models {

absl::StatusOr<std::unique_ptr<SwappedWeights>> SwappedWeights::Create(
    const Checkpoint& checkpoint, const BlockLayout& layout, const PlacementOptions& options,
    const SwapOptions& swap) {
  if (swap.budget_fraction < 0 || swap.budget_fraction > 1 || swap.budget_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("swap: the budget must be 0..1 of the blocks or a byte count >= 0, not ",
                     swap.budget_bytes > 0 ? swap.budget_bytes : swap.budget_fraction));
  }
  auto flat = FlattenBlocks(checkpoint, layout, options);
  if (!flat.ok()) return flat.status();
  std::unique_ptr<SwappedWeights> weights(new SwappedWeights(options));
  weights->globals_ = std::move(flat->globals);
  weights->blocks_.resize(layout.num_blocks());
  std::vector<int64_t> block_bytes;
  int64_t total = 0;
  for (int i = 0; i < layout.num_blocks(); ++i) {
    FlatBlock& block = weights->blocks_[i].layout = std::move(flat->blocks[i]);
    block.PadTo(1);
    block_bytes.push_back(block.bytes());
    total += block.bytes();
  }
  const int64_t budget = swap.budget_bytes > 0
                             ? swap.budget_bytes
                             : static_cast<int64_t>(std::llround(total * swap.budget_fraction));
  auto plan = PlanLayerSwap(block_bytes, budget, swap.prefetch);
  if (!plan.ok()) return plan.status();
  weights->plan_ = *std::move(plan);

  const bool pinned = options.device.is_cuda() && !swap.synchronous;
  for (int i = 0; i < layout.num_blocks(); ++i) {
    Block& block = weights->blocks_[i];
    const bool resident = weights->plan_.resident[i];
    at::Tensor host = HostBytes(block.layout.bytes(), pinned && !resident);
    block.layout.Fill(flat->sources[i], 0, host);
    if (resident) {
      block.resident = host.to(options.device);
    } else {
      block.host = std::move(host);
    }
  }
  weights->synchronous_ = swap.synchronous;
  if (!weights->plan_.streamed.empty()) {
    weights->pool_ = std::make_unique<TransferPool>(
        weights->plan_.buffers, weights->plan_.buffer_bytes, options.device, !swap.synchronous);
  }
  return weights;
}

absl::Status SwappedWeights::Fetch(int index) {
  const at::Tensor& host = blocks_[index].host;
  return pool_->Fill(index, [&](at::Tensor& buffer) {
    // From pinned memory this is an asynchronous copy on the pool's stream; from pageable memory
    // (the synchronous anchor) it returns when the copy is done.
    buffer.narrow(0, 0, host.numel()).copy_(host, /*non_blocking=*/host.is_pinned());
    return absl::OkStatus();
  });
}

absl::StatusOr<const WeightSet*> SwappedWeights::Acquire(int index) {
  if (auto valid = CheckBlock(index); !valid.ok()) return valid;
  Block& block = blocks_[index];
  if (block.acquired) return &block.weights;
  if (plan_.resident[index]) {
    block.weights = block.layout.Unflatten(block.resident, options_.device);
  } else {
    if (auto status = Fetch(index); !status.ok()) return status;  // a no-op once prefetched
    auto buffer = pool_->Acquire(index);
    if (!buffer.ok()) return buffer.status();
    block.weights =
        block.layout.Unflatten(buffer->narrow(0, 0, block.layout.bytes()), options_.device);
  }
  // The next streamed blocks (wrapping into the next forward) start moving while this one runs.
  if (pool_ && !synchronous_) {
    for (int ahead : StreamedAhead(plan_, index)) {
      if (auto status = Fetch(ahead); !status.ok()) return status;
    }
  }
  block.acquired = true;
  return &block.weights;
}

void SwappedWeights::Release(int index) {
  if (index < 0 || index >= num_blocks() || !blocks_[index].acquired) return;
  Block& block = blocks_[index];
  block.weights = WeightSet();  // views of the buffer, and the dequantised fp8 copies
  block.acquired = false;
  if (!plan_.resident[index]) pool_->Release(index);
}

int64_t SwappedWeights::device_bytes() const {
  int64_t total = globals_.bytes();
  for (const Block& block : blocks_) {
    if (block.resident.defined()) total += block.resident.nbytes();
  }
  if (pool_) total += pool_->buffers() * pool_->buffer_bytes();
  return total;
}

int64_t SwappedWeights::host_bytes() const {
  int64_t total = 0;
  for (const Block& block : blocks_) {
    if (block.host.defined()) total += block.host.nbytes();
  }
  return total;
}

}  // namespace raylight::models
