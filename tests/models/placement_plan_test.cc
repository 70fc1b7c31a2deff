// Placement decisions (issue #6) against hand-worked cases: layer-swap resident sets, prefetch
// order with the ring wrap, buffer rotation, and the planner's choice for (model, VRAM, group).
#include "models/core/placement_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace raylight::models {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

std::vector<int> ResidentIndices(const SwapPlan& plan) {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(plan.resident.size()); ++i) {
    if (plan.resident[i]) out.push_back(i);
  }
  return out;
}

TEST(LayerSwapPlanTest, ResidentSetsForBudgets) {
  const std::vector<int64_t> ten(10, 100);  // ten blocks of 100 bytes
  // Everything fits: nothing streams, no pool.
  auto all = PlanLayerSwap(ten, 1000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(ResidentIndices(*all).size(), 10u);
  EXPECT_TRUE(all->streamed.empty());
  EXPECT_EQ(all->buffers, 0);
  // 500 bytes, prefetch 1: a pool of 2 buffers (200), then 3 resident blocks (300), spread:
  // floor((i+1)*3/10) steps up at i = 3, 6, 9.
  auto half = PlanLayerSwap(ten, 500);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(ResidentIndices(*half), (std::vector<int>{3, 6, 9}));
  EXPECT_EQ(half->streamed, (std::vector<int>{0, 1, 2, 4, 5, 7, 8}));
  EXPECT_EQ(half->device_bytes, 500);
  // 10% (100 bytes) cannot even hold the pool: a clear error naming the need.
  auto tiny = PlanLayerSwap(ten, 100);
  EXPECT_EQ(tiny.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tiny.status().message().find("200 bytes"), std::string::npos) << tiny.status();
  // Exactly the pool: everything streams.
  auto pool_only = PlanLayerSwap(ten, 200);
  ASSERT_TRUE(pool_only.ok());
  EXPECT_TRUE(ResidentIndices(*pool_only).empty());
  EXPECT_EQ(pool_only->streamed.size(), 10u);
  // Prefetch 2: three buffers.
  auto deeper = PlanLayerSwap(ten, 500, 2);
  ASSERT_TRUE(deeper.ok());
  EXPECT_EQ(deeper->buffers, 3);
  EXPECT_EQ(ResidentIndices(*deeper), (std::vector<int>{4, 9}));
  EXPECT_FALSE(PlanLayerSwap({}, 100).ok());
  EXPECT_FALSE(PlanLayerSwap(ten, 500, 0).ok());
}

TEST(LayerSwapPlanTest, UnequalBlocksNeverExceedTheBudget) {
  const std::vector<int64_t> blocks = {50, 300, 50, 300, 50, 300};
  for (int64_t budget : {600, 700, 800, 900, 1000}) {
    auto plan = PlanLayerSwap(blocks, budget);
    ASSERT_TRUE(plan.ok()) << budget;
    EXPECT_LE(plan->device_bytes, budget);
    int64_t counted = plan->buffers * plan->buffer_bytes;
    for (int i : ResidentIndices(*plan)) counted += blocks[i];
    EXPECT_EQ(counted, plan->device_bytes);
    EXPECT_EQ(plan->buffer_bytes, 300);  // a buffer holds the largest streamed block
  }
}

TEST(LayerSwapPlanTest, PrefetchOrderWrapsToTheNextForwardAndBuffersRotate) {
  const std::vector<int64_t> ten(10, 100);
  auto plan = PlanLayerSwap(ten, 500);  // streamed 0 1 2 4 5 7 8; resident 3 6 9
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(StreamedAhead(*plan, 0), (std::vector<int>{1}));
  EXPECT_EQ(StreamedAhead(*plan, 2), (std::vector<int>{4}));  // skips resident 3
  EXPECT_EQ(StreamedAhead(*plan, 8), (std::vector<int>{0}));  // the next forward's first block
  EXPECT_EQ(StreamedAhead(*plan, 9), (std::vector<int>{0}));
  auto deeper = PlanLayerSwap(ten, 500, 2);  // streamed 0 1 2 3 5 6 7 8; resident 4 9
  ASSERT_TRUE(deeper.ok());
  EXPECT_EQ(StreamedAhead(*deeper, 7), (std::vector<int>{8, 0}));
  // Over three forwards, the fetches in order (ring wrap included) take the buffers in turn:
  // any `buffers` consecutive fetches use distinct buffers, so a buffer is refilled only after
  // the `prefetch` fetches issued after it. 7 streamed blocks with 2 buffers (odd: a
  // per-forward assignment would reuse buffer 0 across the wrap) and 8 with 3.
  for (const SwapPlan* p : {&*plan, &*deeper}) {
    std::vector<int> order;
    for (int64_t forward = 0; forward < 3; ++forward) {
      for (int block : p->streamed) order.push_back(BufferOf(*p, forward, block));
    }
    for (size_t k = 0; k + p->buffers <= order.size(); ++k) {
      std::vector<int> window(order.begin() + k, order.begin() + k + p->buffers);
      std::sort(window.begin(), window.end());
      EXPECT_EQ(std::adjacent_find(window.begin(), window.end()), window.end())
          << "fetches " << k << ".." << k + p->buffers - 1;
    }
    EXPECT_EQ(BufferOf(*p, 0, 9), -1);  // resident in both
  }
}

TEST(PlacementPlannerTest, ChoicesForModelsGpusAndGroups) {
  // Wan 14B in bf16: 40 blocks of ~0.703 GB, ~0.4 GB of globals; ~6 GB of activations at 32k
  // tokens.
  PlacementInputs wan14b;
  wan14b.block_bytes = 703'000'000;
  wan14b.num_blocks = 40;
  wan14b.global_bytes = 400'000'000;
  wan14b.activation_bytes = 6 * kGiB;
  wan14b.free_host_bytes = 64 * kGiB;
  struct Case {
    const char* what;
    int64_t vram;
    int group;
    Placement expected;
  };
  // usable = vram * 0.9 - 6 GiB; model = 28.5 GB = 26.6 GiB.
  for (const Case& c : std::vector<Case>{
           {"H200 (139 GiB): everything fits", 139 * kGiB, 1, Placement::kResident},
           {"H100 (79 GiB): fits", 79 * kGiB, 1, Placement::kResident},
           {"2x 24 GiB: 15.6 GiB usable, half the blocks (13.1 GiB) + 2 gathered fit", 24 * kGiB, 2,
            Placement::kFsdp},
           {"2x 16 GiB: 8.4 GiB usable; shards do not fit, gathered blocks do", 16 * kGiB, 2,
            Placement::kFsdpHost},
           {"1x 24 GiB: swap with what is left", 24 * kGiB, 1, Placement::kLayerSwap}}) {
    PlacementInputs in = wan14b;
    in.free_vram_bytes = c.vram;
    in.group_size = c.group;
    auto choice = PlanPlacement(in);
    ASSERT_TRUE(choice.ok()) << c.what << ": " << choice.status();
    EXPECT_EQ(choice->placement, c.expected) << c.what << ": " << choice->reason;
    EXPECT_LE(choice->device_bytes, static_cast<int64_t>(c.vram * 0.9) - in.activation_bytes)
        << c.what;
    EXPECT_NE(choice->reason.find(PlacementName(c.expected)), std::string::npos);
  }
  // Layer swap's budget is what is left after activations and globals, capped at the blocks.
  PlacementInputs single = wan14b;
  single.free_vram_bytes = 24 * kGiB;
  auto swap = PlanPlacement(single);
  ASSERT_TRUE(swap.ok());
  EXPECT_EQ(swap->swap_budget_bytes,
            static_cast<int64_t>(24 * kGiB * 0.9) - 6 * kGiB - wan14b.global_bytes);
  EXPECT_EQ(swap->host_bytes, 40 * wan14b.block_bytes);
  // 8 GiB with 6 GiB of activations: not even two blocks fit. The error has the numbers.
  PlacementInputs hopeless = wan14b;
  hopeless.free_vram_bytes = 8 * kGiB;
  auto none = PlanPlacement(hopeless);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(none.status().message().find("nothing fits"), std::string::npos) << none.status();
  // Not enough host memory for swap either.
  PlacementInputs no_host = single;
  no_host.free_host_bytes = 4 * kGiB;
  EXPECT_FALSE(PlanPlacement(no_host).ok());
  EXPECT_FALSE(PlanPlacement(PlacementInputs{}).ok());
  // A worker's model-memory limit caps the weights, not the activations: an H200 limited to
  // 20 GiB for models swaps with a 20 GiB budget less the globals, and says why.
  PlacementInputs limited = wan14b;
  limited.free_vram_bytes = 139 * kGiB;
  limited.weight_limit_bytes = 20 * kGiB;
  auto capped = PlanPlacement(limited);
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(capped->placement, Placement::kLayerSwap) << capped->reason;
  EXPECT_EQ(capped->swap_budget_bytes, 20 * kGiB - wan14b.global_bytes);
  EXPECT_NE(capped->reason.find("a limit of 20.00 GiB"), std::string::npos) << capped->reason;
}

}  // namespace
}  // namespace raylight::models
