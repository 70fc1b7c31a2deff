// Weight-placement decisions, as plain arithmetic (no torch, no devices): which blocks stay on
// the GPU under a layer-swap budget and in what order the others are fetched, and which
// placement a job should use given the model, the GPUs and the group (issue #6). The providers
// that carry these plans out take them as input, so the decisions are tested on their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace raylight::models {

// ---- layer swap ---------------------------------------------------------------------------------

// Blocks run 0..n-1 every forward, and the forward after repeats them: the order is a ring.
struct SwapPlan {
  std::vector<bool> resident;  // per block: kept on the device
  int prefetch = 1;            // streamed blocks in flight ahead of the running one
  int buffers = 0;             // the fixed pool of device buffers streamed blocks rotate through
  int64_t buffer_bytes = 0;    // each buffer's size (the largest streamed block)
  int64_t device_bytes = 0;    // resident blocks + the pool: what the plan puts on the device
  std::vector<int> streamed;   // the streamed blocks in execution order
};

// `block_bytes[i]`: block i's bytes as they sit on the device. The budget pays for the buffer pool
// (prefetch + 1 buffers, so that a buffer is refilled only after the block that read it has
// finished) and then for as many resident blocks as fit, spread evenly through the ring so that
// each streamed block's copy overlaps the compute of the blocks before it. Errors: an empty
// model, prefetch < 1, or a budget below the pool.
absl::StatusOr<SwapPlan> PlanLayerSwap(const std::vector<int64_t>& block_bytes,
                                       int64_t budget_bytes, int prefetch = 1);

// The streamed blocks that should be in flight (issued, in this order) when block `running`
// starts: the next `prefetch` streamed blocks after it, wrapping to the next forward.
std::vector<int> StreamedAhead(const SwapPlan& plan, int running);

// The buffer streamed block `block` uses in forward number `forward` (0, 1, ...): fetches take the
// pool's buffers in turn across forwards, so consecutive fetches never share a buffer, the ring
// wrap included (a per-forward assignment would collide there when the streamed count is not a
// multiple of the pool). -1 for a resident block.
int BufferOf(const SwapPlan& plan, int64_t forward, int block);

// ---- the planner (placement = auto) -------------------------------------------------------------

enum class Placement { kResident, kFsdp, kFsdpHost, kLayerSwap };
// "resident", "fsdp", "fsdp-host", "swap": the names jobs use.
const char* PlacementName(Placement placement);
// The placement of a name; an error listing the names (and "auto", which callers handle).
absl::StatusOr<Placement> ParsePlacement(absl::string_view name);

struct PlacementInputs {
  int64_t block_bytes = 0;  // one block on the device (all blocks equal, as in Wan)
  int num_blocks = 0;
  int64_t global_bytes = 0;      // embeddings, head: always replicated
  int64_t activation_bytes = 0;  // peak activations of one forward at the job's token count
  int64_t free_vram_bytes = 0;   // the smallest free memory among the group's GPUs
  int64_t free_host_bytes = 0;   // pinnable host memory per rank
  // The most the weights may take per GPU whatever is free (a worker's configured model memory).
  int64_t weight_limit_bytes = INT64_MAX;
  int group_size = 1;
  double headroom = 0.10;  // of free VRAM kept back for the allocator and kernels' workspaces
};

struct PlacementChoice {
  Placement placement = Placement::kResident;
  int64_t swap_budget_bytes = 0;  // kLayerSwap: the device budget for blocks
  int64_t device_bytes = 0;       // weights + buffers the choice puts on each GPU
  int64_t host_bytes = 0;         // pinned host memory per rank
  bool fits = false;              // within the usable device memory and the free host memory
  std::string reason;             // the numbers behind the choice, for the job's log and status
};

// What `placement` needs on each GPU and in host memory for these inputs, and whether it fits.
// Layer swap's budget is what the GPU has left for blocks after activations and globals, within
// [the two-buffer pool, all the blocks].
PlacementChoice PlacementFor(const PlacementInputs& in, Placement placement);

// The cheapest placement that fits, in this order: resident (everything on every GPU); FSDP
// (1/N of the blocks per GPU plus two gathered blocks); FSDP with host shards (the shards in
// pinned host memory, two gathered blocks on the GPU); layer swap (single GPU: a budget of what
// is left after activations). An error, with the numbers, when nothing fits.
absl::StatusOr<PlacementChoice> PlanPlacement(const PlacementInputs& in);

}  // namespace raylight::models
