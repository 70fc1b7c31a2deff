// Layer swap and the transfer pool behind it (issue #6). The swapped forward must equal the
// resident forward bit for bit (a copy is a copy): on the CPU in fp32 and, compiled with
// RAYLIGHT_TEST_GPU (label gpu), on a GPU in bf16 with pinned memory, a copy stream and events,
// where 20 repeated forwards must also agree (an event missing between copy and compute, or a
// buffer refilled while still read, shows up as a difference). Budgets of 10%, 25% and 50% of
// the blocks' bytes, prefetch 1 and 2, two forwards each so that the ring wraps.
#include <gtest/gtest.h>

#include <random>

#include "models/core/swapped_weights.h"
#include "models/core/transfer_pool.h"
#include "models/wan/wan_loader.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

using wan::WanConfig;
using wan::WanInputs;

#ifdef RAYLIGHT_TEST_GPU
const at::Device kDevice("cuda");
constexpr at::ScalarType kDtype = at::kBFloat16;
constexpr const char* kPreset = "wan2.1-t2v-1.3b";  // real block size: copies that take time
constexpr int kRepeats = 20;
const testing_util::LatentSize kLatent{1, 3, 30, 52, 77};
#else
const at::Device kDevice(at::kCPU);
constexpr at::ScalarType kDtype = at::kFloat;
constexpr const char* kPreset = "tiny-t2v";
constexpr int kRepeats = 3;
const testing_util::LatentSize kLatent{};
#endif
constexpr int kLayers = 20;  // 10% of the blocks is two: exactly the pool of prefetch 1

PlacementOptions Placement() {
  PlacementOptions options;
  options.device = kDevice;
  options.compute_dtype = kDtype;
  return options;
}

class LayerSwapTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("layer-swap");
    config_ = new WanConfig(*wan::WanPreset(kPreset));
    config_->num_layers = kLayers;
    checkpoint_ = new std::string(
        testing_util::MakeCheckpoint(dir_->path(), *config_, CheckpointOptions(kDtype), "m"));
  }
  // A random checkpoint stored in `dtype`, of fresh values, written on the test's device.
  static wan::MakeCheckpointOptions CheckpointOptions(at::ScalarType dtype) {
    wan::MakeCheckpointOptions options;
    options.dtype = dtype;
    options.seed = std::random_device{}();
#ifdef RAYLIGHT_TEST_GPU
    options.device = kDevice;
#endif
    return options;
  }
  static void TearDownTestSuite() {
    delete checkpoint_;
    delete config_;
    delete dir_;
  }

  static at::Tensor Forward(const wan::LoadedWan& loaded, const WanInputs& inputs) {
    auto out = wan::WanForward(loaded.config, inputs, ParallelContext{}, *loaded.weights);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->cpu() : at::Tensor();
  }

  static testing_util::TempDir* dir_;
  static WanConfig* config_;
  static std::string* checkpoint_;
};

testing_util::TempDir* LayerSwapTest::dir_ = nullptr;
WanConfig* LayerSwapTest::config_ = nullptr;
std::string* LayerSwapTest::checkpoint_ = nullptr;

TEST_F(LayerSwapTest, EveryBudgetReproducesTheResidentForwardBitForBit) {
  auto resident = wan::LoadWanResident({*checkpoint_}, Placement());
  ASSERT_TRUE(resident.ok()) << resident.status();
  const WanInputs first = testing_util::RandomWanInputs(*config_, kLatent);
  const WanInputs second = testing_util::RandomWanInputs(*config_, kLatent);
  const at::Tensor expected_first = Forward(*resident, first);
  const at::Tensor expected_second = Forward(*resident, second);
  for (double fraction : {0.10, 0.25, 0.50}) {
    for (int prefetch : {1, 2}) {
      const std::string what =
          ::testing::PrintToString(fraction) + " prefetch " + std::to_string(prefetch);
      SwapOptions swap;
      swap.budget_fraction = fraction;
      swap.prefetch = prefetch;
      auto loaded = wan::LoadWanSwapped({*checkpoint_}, Placement(), swap);
      if (fraction == 0.10 && prefetch == 2) {
        // Three buffers are more than 10% of twenty blocks: refused, with the numbers.
        ASSERT_FALSE(loaded.ok()) << what;
        EXPECT_NE(loaded.status().message().find("below the 3 block buffers"), std::string::npos)
            << loaded.status();
        continue;
      }
      ASSERT_TRUE(loaded.ok()) << what << ": " << loaded.status();
      auto* swapped = dynamic_cast<SwappedWeights*>(loaded->weights.get());
      ASSERT_NE(swapped, nullptr);
      const SwapPlan& plan = swapped->plan();
      const int streamed = static_cast<int>(plan.streamed.size());
      ASSERT_GT(streamed, plan.buffers) << what << ": blocks would stay cached, nothing streams";
      EXPECT_LE(swapped->device_bytes() - loaded->weights->globals().bytes(),
                static_cast<int64_t>(fraction * (swapped->host_bytes() + plan.device_bytes -
                                                 plan.buffers * plan.buffer_bytes)) +
                    1)
          << what;

      EXPECT_TRUE(at::equal(Forward(*loaded, first), expected_first)) << what;
      // Each streamed block moves once per forward: the ring's wrap fetched the second forward's
      // first blocks during the first forward, and nothing is fetched twice.
      const int64_t after_first = swapped->fetches();
      EXPECT_EQ(after_first, streamed + prefetch) << what;
      EXPECT_TRUE(at::equal(Forward(*loaded, second), expected_second)) << what;
      EXPECT_EQ(swapped->fetches() - after_first, streamed) << what;
    }
  }
}

TEST_F(LayerSwapTest, RepeatedForwardsAreIdentical) {
  SwapOptions swap;
  swap.budget_fraction = 0.25;
  auto loaded = wan::LoadWanSwapped({*checkpoint_}, Placement(), swap);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const WanInputs inputs = testing_util::RandomWanInputs(*config_, kLatent);
  const at::Tensor first = Forward(*loaded, inputs);
  for (int run = 1; run < kRepeats; ++run) {
    ASSERT_TRUE(at::equal(Forward(*loaded, inputs), first)) << "run " << run;
  }
}

TEST_F(LayerSwapTest, SynchronousPageableAnchorAgrees) {
  SwapOptions swap;
  swap.budget_fraction = 0.25;
  swap.synchronous = true;
  auto anchor = wan::LoadWanSwapped({*checkpoint_}, Placement(), swap);
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  auto resident = wan::LoadWanResident({*checkpoint_}, Placement());
  ASSERT_TRUE(resident.ok()) << resident.status();
  const WanInputs inputs = testing_util::RandomWanInputs(*config_, kLatent);
  EXPECT_TRUE(at::equal(Forward(*anchor, inputs), Forward(*resident, inputs)));
}

TEST_F(LayerSwapTest, Fp8BlocksMoveAsFp8) {
  WanConfig config = *config_;
  config.num_layers = 6;
  const std::string fp8 = testing_util::MakeCheckpoint(
      dir_->path(), config, CheckpointOptions(at::kFloat8_e4m3fn), "fp8");
  SwapOptions swap;
  swap.budget_fraction = 0.5;
  auto swapped = wan::LoadWanSwapped({fp8}, Placement(), swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  auto resident = wan::LoadWanResident({fp8}, Placement());
  ASSERT_TRUE(resident.ok()) << resident.status();
  const WanInputs inputs = testing_util::RandomWanInputs(config, kLatent);
  EXPECT_TRUE(at::equal(Forward(*swapped, inputs), Forward(*resident, inputs)));
  // The host copy holds the matrices at one byte per value: well under half of the compute
  // dtype's bytes for the same blocks (norms and biases stay in the compute dtype).
  auto* weights = dynamic_cast<SwappedWeights*>(swapped->weights.get());
  int64_t values = 0;
  auto opened = wan::OpenWanCheckpoint({fp8});
  ASSERT_TRUE(opened.ok());
  for (const auto& [name, tensor] : opened->checkpoint.tensors) {
    if (name.rfind("blocks.", 0) == 0) values += tensor.data.numel();
  }
  const int64_t streamed_values =
      values * static_cast<int64_t>(weights->plan().streamed.size()) / config.num_layers;
  EXPECT_LT(weights->host_bytes(), streamed_values * c10::elementSize(kDtype) * 6 / 10);
}

// fp8 compute under layer swap: the block linears stream as fp8 compute holds them (e4m3 values
// and float row scales, quantised at load as the resident load quantises them; an fp8-scaled
// file's bytes as stored), so the forward is the resident fp8 forward's, for a checkpoint in the
// compute dtype and for an fp8-scaled one.
TEST_F(LayerSwapTest, Fp8ComputeWeightsStreamAsE4m3WithTheirRowScales) {
  WanConfig config = *config_;
  config.num_layers = 6;
  for (const at::ScalarType stored : {kDtype, at::kFloat8_e4m3fn}) {
    const std::string path = testing_util::MakeCheckpoint(
        dir_->path(), config, CheckpointOptions(stored), stored == kDtype ? "plain" : "scaled");
    PlacementOptions fp8 = Placement();
    fp8.fp8_compute = true;
    SwapOptions swap;
    swap.budget_fraction = 0.5;
    auto swapped = wan::LoadWanSwapped({path}, fp8, swap);
    ASSERT_TRUE(swapped.ok()) << swapped.status();
    auto resident = wan::LoadWanResident({path}, fp8);
    ASSERT_TRUE(resident.ok()) << resident.status();
    auto* weights = dynamic_cast<SwappedWeights*>(swapped->weights.get());
    ASSERT_NE(weights, nullptr);
    ASSERT_GT(weights->plan().streamed.size(), 0u);
    const WanInputs inputs = testing_util::RandomWanInputs(config, kLatent);
    EXPECT_TRUE(at::equal(Forward(*swapped, inputs), Forward(*resident, inputs)))
        << c10::toString(stored);
    // A streamed block's linears arrive as e4m3 with their scales.
    const int streamed = weights->plan().streamed.front();
    auto block = weights->Acquire(streamed);
    ASSERT_TRUE(block.ok()) << block.status();
    EXPECT_EQ((*block)->Get("self_attn.q.weight").scalar_type(), at::kFloat8_e4m3fn);
    EXPECT_EQ((*block)->Get("self_attn.q.weight_scale").scalar_type(), at::kFloat);
    weights->Release(streamed);
  }
}

#ifndef RAYLIGHT_TEST_GPU

// ---- the transfer pool's bookkeeping (CPU: fills run at once, in order) --------------------

absl::Status FillWith(TransferPool& pool, int block) {
  return pool.Fill(block, [block](at::Tensor& buffer) {
    buffer.fill_(block);
    return absl::OkStatus();
  });
}

TEST(TransferPoolTest, ReusesReleasedBuffersLeastRecentFirstAndKeepsWhatIsHeld) {
  TransferPool pool(2, 8, at::kCPU);
  ASSERT_TRUE(FillWith(pool, 0).ok());
  ASSERT_TRUE(FillWith(pool, 1).ok());
  ASSERT_TRUE(FillWith(pool, 1).ok());  // still held: no fill
  EXPECT_EQ(pool.fills(), 2);
  auto zero = pool.Acquire(0);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ((*zero)[0].item<int>(), 0);
  // Block 0 is being read and block 1 waits to be: nothing may be overwritten except block 1,
  // which was filled ahead and never acquired (an abandoned schedule).
  ASSERT_TRUE(FillWith(pool, 2).ok());
  EXPECT_EQ((*pool.Acquire(0))[0].item<int>(), 0);
  EXPECT_FALSE(pool.Acquire(1).ok());
  auto two = pool.Acquire(2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ((*two)[0].item<int>(), 2);
  // Both acquired: no buffer for a third block.
  auto refused = FillWith(pool, 3);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("all 2 are in use"), std::string::npos) << refused;
  pool.Release(2);
  pool.Release(0);
  // Block 2 was released first: it goes first; block 0 stays and is read again without a fill.
  ASSERT_TRUE(FillWith(pool, 4).ok());
  const int64_t fills = pool.fills();
  ASSERT_TRUE(FillWith(pool, 0).ok());
  EXPECT_EQ(pool.fills(), fills);
  EXPECT_EQ((*pool.Acquire(0))[0].item<int>(), 0);
  EXPECT_EQ((*pool.Acquire(4))[0].item<int>(), 4);
}

TEST(TransferPoolTest, AFailedFillLeavesTheBufferEmpty) {
  TransferPool pool(1, 8, at::kCPU);
  auto failed = pool.Fill(5, [](at::Tensor&) { return absl::UnavailableError("peer lost"); });
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(pool.Acquire(5).ok());
  ASSERT_TRUE(FillWith(pool, 6).ok());
  EXPECT_EQ((*pool.Acquire(6))[0].item<int>(), 6);
}

#endif  // RAYLIGHT_TEST_GPU

}  // namespace
}  // namespace raylight::models
