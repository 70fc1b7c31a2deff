#include "runtime/worker/call_executor.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace raylight::worker {
namespace {

// Submits one caller's tasks in a random order: they run in sequence order.
TEST(CallExecutorTest, RunsOneCallersTasksInSequenceOrder) {
  CallExecutor executor(absl::Seconds(30));
  std::vector<uint64_t> order;
  std::vector<uint64_t> seqs(50);
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i] = i + 1;
  std::shuffle(seqs.begin(), seqs.end(), std::mt19937(std::random_device{}()));
  absl::Notification done;
  absl::Mutex mu;
  for (uint64_t seq : seqs) {
    executor.Submit("caller", seq,
                    {[&, seq] {
                       absl::MutexLock lock(&mu);
                       order.push_back(seq);
                       if (order.size() == seqs.size()) done.Notify();
                     },
                     [](absl::Status) { FAIL() << "abandoned"; }});
  }
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i + 1);
}

// A missing predecessor holds its successors only for the gap timeout.
TEST(CallExecutorTest, SkipsAGapAfterTheTimeout) {
  CallExecutor executor(absl::Milliseconds(50));
  absl::Notification ran;
  executor.Submit("caller", 2, {[&] { ran.Notify(); }, [](absl::Status) {}});
  EXPECT_FALSE(ran.WaitForNotificationWithTimeout(absl::Milliseconds(10)));
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

// The same with the loop already asleep (no work, no gap) when the gap starts: the gap's timeout
// must still wake it. (Found by CI: the test above passes only when the submit wins the race
// against the loop's first wait.)
TEST(CallExecutorTest, SkipsAGapThatStartsWhileTheLoopSleeps) {
  CallExecutor executor(absl::Milliseconds(50));
  absl::SleepFor(absl::Milliseconds(100));  // the loop is waiting, with no deadline
  absl::Notification ran;
  executor.Submit("caller", 2, {[&] { ran.Notify(); }, [](absl::Status) {}});
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

// Stop answers every queued task through its abandon callback.
TEST(CallExecutorTest, StopAbandonsQueuedTasks) {
  auto executor = std::make_unique<CallExecutor>();
  absl::Notification blocker_started, release;
  executor->Submit("", 0,
                   {[&] {
                      blocker_started.Notify();
                      release.WaitForNotification();
                    },
                    [](absl::Status) {}});
  ASSERT_TRUE(blocker_started.WaitForNotificationWithTimeout(absl::Seconds(30)));
  int abandoned = 0;
  bool ran = false;
  for (int i = 0; i < 3; ++i) {
    executor->Submit("c", static_cast<uint64_t>(i + 2),  // waiting behind a gap
                     {[&] { ran = true; },
                      [&](absl::Status status) {
                        EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
                        ++abandoned;
                      }});
  }
  executor->Submit("", 0, {[&] { ran = true; }, [&](absl::Status) { ++abandoned; }});
  executor->RequestStop();
  release.Notify();
  executor->Stop();
  EXPECT_FALSE(ran);
  EXPECT_EQ(abandoned, 4);
}

}  // namespace
}  // namespace raylight::worker
