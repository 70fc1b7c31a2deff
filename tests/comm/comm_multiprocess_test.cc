// Runs the Communicator suite (comm_rank_suite) with every rank a separate process.
// Gloo on CPU with 2, 3 and 4 ranks; NCCL with one process per GPU (label `gpu`; skipped
// without at least two GPUs).

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/util/rank_launcher.h"

#ifdef RAYLIGHT_TEST_GPU
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace raylight {
namespace {

using std::chrono::milliseconds;
using testing_util::RankOutcome;

struct RankRun {
  std::string backend;
  int size = 2;
  std::string scenario = "suite";
  std::vector<int> ranks_started;  // empty: all
  int timeout_ms = 60'000;
};

// Starts the ranks of comm_rank_suite with fresh random inputs and returns how each ended.
std::vector<RankOutcome> RunRanks(const RankRun& run, milliseconds deadline) {
  std::random_device random;
  const uint64_t seed = (uint64_t{random()} << 32) | random();  // fresh inputs every run
  return testing_util::LaunchRanks(
      {RAYLIGHT_COMM_RANK_BINARY, absl::StrCat("--backend=", run.backend),
       absl::StrCat("--seed=", seed), absl::StrCat("--timeout_ms=", run.timeout_ms),
       absl::StrCat("--scenario=", run.scenario)},
      run.size, deadline, run.ranks_started);
}

void ExpectAllSucceeded(const std::vector<RankOutcome>& outcomes) {
  for (size_t r = 0; r < outcomes.size(); ++r) {
    EXPECT_EQ(outcomes[r].exit_code, 0) << "rank " << outcomes[r].rank << " log:\n"
                                        << outcomes[r].log;
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

// Issue #23: a rank waiting for a peer that will not come (cancelled before it started, hung,
// lost) waited for the collective timeout. Abort ends the wait at once, in collectives, in a
// communicator split from the aborted one, in point-to-point receives and in the rendezvous.
TEST(GlooFailures, AnAbortEndsCollectivesAndReceivesWaitingForAPeer) {
  const auto start = std::chrono::steady_clock::now();
  ExpectAllSucceeded(
      RunRanks({.backend = "gloo", .size = 2, .scenario = "abort_waiting", .timeout_ms = 120'000},
               milliseconds(60'000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(30'000));
}

TEST(GlooFailures, AnAbortEndsARendezvousWaitingForAPeer) {
  ExpectAllSucceeded(RunRanks({.backend = "gloo",
                               .size = 2,
                               .scenario = "abort_rendezvous",
                               .ranks_started = {1},
                               .timeout_ms = 120'000},
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

TEST(NcclFailures, AnAbortEndsCollectivesAndReceivesWaitingForAPeer) {
  if (!HaveTwoGpus()) GTEST_SKIP() << "needs 2 GPUs";
  ExpectAllSucceeded(
      RunRanks({.backend = "nccl", .size = 2, .scenario = "abort_waiting", .timeout_ms = 120'000},
               milliseconds(120'000)));
}

TEST(NcclFailures, AnAbortEndsARendezvousWaitingForAPeer) {
  if (!HaveTwoGpus()) GTEST_SKIP() << "needs 2 GPUs";
  ExpectAllSucceeded(RunRanks({.backend = "nccl",
                               .size = 2,
                               .scenario = "abort_rendezvous",
                               .ranks_started = {1},
                               .timeout_ms = 120'000},
                              milliseconds(60'000)));
}

#endif

}  // namespace
}  // namespace raylight
