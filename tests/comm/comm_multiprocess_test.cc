// Runs the Communicator suite (comm_rank_suite) with every rank a separate process.
// Gloo on CPU with 2, 3 and 4 ranks; NCCL with one process per GPU (label `gpu`; skipped
// without at least two GPUs).
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"

#ifdef RAYLIGHT_TEST_GPU
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace raylight {
namespace {

using std::chrono::milliseconds;
using testing_util::ChildProcess;

struct RankRun {
  std::string backend;
  int size = 2;
  std::string scenario = "suite";
  std::vector<int> ranks_started;  // empty: all
  int timeout_ms = 60'000;
};

struct RankOutcome {
  int exit_code;
  std::string log;
};

// Starts the ranks, waits for all of them (bounded), and returns each one's exit code and log.
std::vector<RankOutcome> RunRanks(const RankRun& run, milliseconds deadline) {
  std::random_device random;
  const uint64_t seed = (uint64_t{random()} << 32) | random();  // fresh inputs every run
  testing_util::TempDir temp("raylight_comm_");
  const std::filesystem::path dir = temp.path();
  std::vector<int> ranks = run.ranks_started;
  if (ranks.empty()) {
    for (int r = 0; r < run.size; ++r) ranks.push_back(r);
  }
  std::vector<ChildProcess> children;
  for (int rank : ranks) {
    auto child = ChildProcess::Spawn(
        {RAYLIGHT_COMM_RANK_BINARY, absl::StrCat("--backend=", run.backend),
         absl::StrCat("--rank=", rank), absl::StrCat("--size=", run.size),
         absl::StrCat("--store_dir=", (dir / "store").string()), absl::StrCat("--seed=", seed),
         absl::StrCat("--timeout_ms=", run.timeout_ms), absl::StrCat("--scenario=", run.scenario)},
        (dir / absl::StrCat("rank", rank, ".log")).string());
    EXPECT_TRUE(child.ok()) << child.status();
    if (child.ok()) children.push_back(std::move(*child));
  }
  std::vector<RankOutcome> outcomes;
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (ChildProcess& child : children) {
    auto left = std::chrono::duration_cast<milliseconds>(end - std::chrono::steady_clock::now());
    auto code = child.Wait(std::max(left, milliseconds(1)));
    outcomes.push_back(
        {code.ok() ? *code : -1,
         absl::StrCat(code.ok() ? "" : code.status().ToString() + "\n", child.ReadLog())});
  }
  return outcomes;
}

void ExpectAllSucceeded(const std::vector<RankOutcome>& outcomes) {
  for (size_t r = 0; r < outcomes.size(); ++r) {
    EXPECT_EQ(outcomes[r].exit_code, 0) << "rank " << r << " log:\n" << outcomes[r].log;
  }
}

#ifndef RAYLIGHT_TEST_GPU

class GlooSuite : public testing::TestWithParam<int> {};

TEST_P(GlooSuite, EveryOperationMatchesTheReference) {
  ExpectAllSucceeded(RunRanks({.backend = "gloo", .size = GetParam()}, milliseconds(300'000)));
}

INSTANTIATE_TEST_SUITE_P(Ranks, GlooSuite, testing::Values(2, 3, 4),
                         [](const auto& info) { return absl::StrCat(info.param, "ranks"); });

TEST(GlooFailures, ARankThatNeverArrivesIsATimeoutError) {
  const auto start = std::chrono::steady_clock::now();
  auto outcomes = RunRanks({.backend = "gloo",
                            .size = 2,
                            .scenario = "never_arrive",
                            .ranks_started = {1},
                            .timeout_ms = 2'000},
                           milliseconds(60'000));
  ExpectAllSucceeded(outcomes);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(30'000));
}

TEST(GlooFailures, APeerDyingMidJobIsAnErrorNotAHang) {
  ExpectAllSucceeded(
      RunRanks({.backend = "gloo", .size = 2, .scenario = "peer_dies", .timeout_ms = 5'000},
               milliseconds(60'000)));
}

#else  // RAYLIGHT_TEST_GPU

bool HaveTwoGpus() { return c10::cuda::device_count() >= 2; }

TEST(NcclSuite, EveryOperationMatchesTheReferenceOnTwoGpus) {
  if (!HaveTwoGpus()) GTEST_SKIP() << "needs 2 GPUs";
  ExpectAllSucceeded(RunRanks({.backend = "nccl", .size = 2}, milliseconds(300'000)));
}

TEST(NcclFailures, ARankThatNeverArrivesIsATimeoutError) {
  if (!HaveTwoGpus()) GTEST_SKIP() << "needs 2 GPUs";
  ExpectAllSucceeded(RunRanks({.backend = "nccl",
                               .size = 2,
                               .scenario = "never_arrive",
                               .ranks_started = {1},
                               .timeout_ms = 5'000},
                              milliseconds(120'000)));
  ExpectAllSucceeded(RunRanks({.backend = "nccl",
                               .size = 2,
                               .scenario = "never_arrive",
                               .ranks_started = {0},
                               .timeout_ms = 5'000},
                              milliseconds(120'000)));
}

TEST(NcclFailures, APeerDyingMidJobIsAnErrorNotAHang) {
  if (!HaveTwoGpus()) GTEST_SKIP() << "needs 2 GPUs";
  ExpectAllSucceeded(
      RunRanks({.backend = "nccl", .size = 2, .scenario = "peer_dies", .timeout_ms = 5'000},
               milliseconds(120'000)));
}

#endif

}  // namespace
}  // namespace raylight
