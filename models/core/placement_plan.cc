#include "models/core/placement_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace raylight::models {
namespace {

std::string GiB(int64_t bytes) { return absl::StrFormat("%.2f GiB", bytes / double(1 << 30)); }

}  // namespace

absl::StatusOr<SwapPlan> PlanLayerSwap(const std::vector<int64_t>& block_bytes,
                                       int64_t budget_bytes, int prefetch) {
  const int n = static_cast<int>(block_bytes.size());
  if (n == 0) return absl::InvalidArgumentError("layer swap: the model has no blocks");
  if (prefetch < 1) {
    return absl::InvalidArgumentError(absl::StrCat("layer swap: prefetch ", prefetch, " < 1"));
  }
  int64_t total = 0;
  for (int64_t bytes : block_bytes) total += bytes;
  SwapPlan plan;
  plan.prefetch = prefetch;
  plan.resident.assign(n, false);
  if (budget_bytes >= total) {  // everything fits: nothing to stream
    plan.resident.assign(n, true);
    plan.device_bytes = total;
    return plan;
  }
  plan.buffers = std::min(prefetch + 1, n);
  plan.buffer_bytes = *std::max_element(block_bytes.begin(), block_bytes.end());
  const int64_t pool = plan.buffers * plan.buffer_bytes;
  if (budget_bytes < pool) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer swap: a budget of ", budget_bytes, " bytes is below the ", plan.buffers,
                     " block buffers that streaming needs (", pool, " bytes)"));
  }
  // How many blocks fit beside the pool (the smallest first, so equal blocks count exactly).
  std::vector<int64_t> sorted = block_bytes;
  std::sort(sorted.begin(), sorted.end());
  int keep = 0;
  int64_t used = pool;
  while (keep < n - 1 && used + sorted[keep] <= budget_bytes) used += sorted[keep++];
  // Spread `keep` resident blocks evenly over the ring (block i is resident when the running
  // share floor((i + 1) keep / n) steps up at i).
  for (int i = 0; i < n; ++i) {
    plan.resident[i] =
        (static_cast<int64_t>(i + 1) * keep) / n > (static_cast<int64_t>(i) * keep) / n;
  }
  plan.device_bytes = pool;
  for (int i = 0; i < n; ++i) {
    if (plan.resident[i]) {
      plan.device_bytes += block_bytes[i];
    } else {
      plan.streamed.push_back(i);
    }
  }
  // Unequal blocks: the spread may have picked larger ones than the count assumed; drop resident
  // blocks (from the end) until the plan fits.
  for (int i = n - 1; i >= 0 && plan.device_bytes > budget_bytes; --i) {
    if (!plan.resident[i]) continue;
    plan.resident[i] = false;
    plan.device_bytes -= block_bytes[i];
    plan.streamed.insert(std::upper_bound(plan.streamed.begin(), plan.streamed.end(), i), i);
  }
  return plan;
}

std::vector<int> StreamedAhead(const SwapPlan& plan, int running) {
  std::vector<int> ahead;
  const int count = static_cast<int>(plan.streamed.size());
  if (count == 0) return ahead;
  // The first streamed block after `running` in ring order.
  auto next = std::upper_bound(plan.streamed.begin(), plan.streamed.end(), running);
  int start = static_cast<int>(next - plan.streamed.begin()) % count;
  for (int k = 0; k < std::min(plan.prefetch, count); ++k) {
    ahead.push_back(plan.streamed[(start + k) % count]);
  }
  return ahead;
}

int BufferOf(const SwapPlan& plan, int64_t forward, int block) {
  auto it = std::lower_bound(plan.streamed.begin(), plan.streamed.end(), block);
  if (it == plan.streamed.end() || *it != block || plan.buffers == 0) return -1;
  const int64_t fetch = forward * static_cast<int64_t>(plan.streamed.size()) +
                        (it - plan.streamed.begin());  // fetches so far, this one included
  return static_cast<int>(fetch % plan.buffers);
}

const char* PlacementName(Placement placement) {
  switch (placement) {
    case Placement::kResident:
      return "resident";
    case Placement::kFsdp:
      return "fsdp";
    case Placement::kFsdpHost:
      return "fsdp-host";
    case Placement::kLayerSwap:
      return "swap";
  }
  return "?";
}

absl::StatusOr<Placement> ParsePlacement(absl::string_view name) {
  for (Placement placement :
       {Placement::kResident, Placement::kFsdp, Placement::kFsdpHost, Placement::kLayerSwap}) {
    if (name == PlacementName(placement)) return placement;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown '", name, "' (auto, resident, fsdp, fsdp-host, swap)"));
}

namespace {

// What the GPU can give the weights: free memory less headroom and activations, within the limit.
int64_t UsableBytes(const PlacementInputs& in) {
  return std::min(
      static_cast<int64_t>(in.free_vram_bytes * (1 - in.headroom)) - in.activation_bytes,
      in.weight_limit_bytes);
}

std::string Sizes(const PlacementInputs& in) {
  const int64_t model = in.block_bytes * in.num_blocks + in.global_bytes;
  return absl::StrCat("model ", GiB(model), " (", in.num_blocks, " blocks of ", GiB(in.block_bytes),
                      "), activations ", GiB(in.activation_bytes), ", ", GiB(UsableBytes(in)),
                      " usable per GPU after ", static_cast<int>(in.headroom * 100), "% headroom",
                      in.weight_limit_bytes < INT64_MAX
                          ? absl::StrCat(" and a limit of ", GiB(in.weight_limit_bytes))
                          : std::string(),
                      ", group of ", in.group_size);
}

}  // namespace

PlacementChoice PlacementFor(const PlacementInputs& in, Placement placement) {
  const int64_t usable = UsableBytes(in);
  const int64_t blocks = in.block_bytes * in.num_blocks;
  const int n = std::max(in.group_size, 1);
  // FSDP: this rank's shards plus two gathered blocks (the running one and the prefetched one);
  // layer swap's pool is two buffers too (prefetch 1).
  const int64_t two_blocks = 2 * in.block_bytes;
  const int64_t shard = (blocks + n - 1) / n;
  PlacementChoice choice;
  choice.placement = placement;
  const std::string sizes = Sizes(in);
  switch (placement) {
    case Placement::kResident:
      choice.device_bytes = blocks + in.global_bytes;
      choice.fits = choice.device_bytes <= usable;
      choice.reason = absl::StrCat("resident: ", sizes);
      break;
    case Placement::kFsdp:
      choice.device_bytes = in.global_bytes + shard + two_blocks;
      choice.fits = n > 1 && choice.device_bytes <= usable;
      choice.reason = absl::StrCat("fsdp: ", sizes, "; 1/", n, " of the blocks is ", GiB(shard));
      break;
    case Placement::kFsdpHost:
      choice.device_bytes = in.global_bytes + two_blocks;
      choice.host_bytes = shard;
      choice.fits = n > 1 && choice.device_bytes <= usable && shard <= in.free_host_bytes;
      choice.reason = absl::StrCat("fsdp-host: ", sizes, "; shards of ", GiB(shard),
                                   " do not fit beside the activations, they stay in host memory");
      break;
    case Placement::kLayerSwap:
      // The whole model in pinned host memory, what is left on the GPU for blocks.
      choice.swap_budget_bytes = std::clamp(usable - in.global_bytes, two_blocks, blocks);
      choice.device_bytes = in.global_bytes + choice.swap_budget_bytes;
      choice.host_bytes = blocks;
      choice.fits = usable - in.global_bytes >= two_blocks && blocks <= in.free_host_bytes;
      choice.reason = absl::StrCat("swap: ", sizes, "; ", GiB(choice.swap_budget_bytes),
                                   " of blocks on the GPU, the rest streamed from host memory");
      break;
  }
  return choice;
}

absl::StatusOr<PlacementChoice> PlanPlacement(const PlacementInputs& in) {
  if (in.num_blocks <= 0 || in.block_bytes <= 0 || in.group_size <= 0 || in.free_vram_bytes <= 0) {
    return absl::InvalidArgumentError(
        "placement: blocks, block bytes, group size and free VRAM must be positive");
  }
  for (Placement placement :
       {Placement::kResident, Placement::kFsdp, Placement::kFsdpHost, Placement::kLayerSwap}) {
    PlacementChoice choice = PlacementFor(in, placement);
    if (choice.fits) return choice;
  }
  const int64_t blocks = in.block_bytes * in.num_blocks;
  return absl::ResourceExhaustedError(
      absl::StrCat("placement: nothing fits: ", Sizes(in), "; even streaming needs ",
                   GiB(in.global_bytes + 2 * in.block_bytes), " on the GPU and ",
                   GiB(in.group_size > 1 ? (blocks + in.group_size - 1) / in.group_size : blocks),
                   " of host memory (", GiB(in.free_host_bytes), " free)"));
}

}  // namespace raylight::models
