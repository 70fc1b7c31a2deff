// ModelCallJournal's file: what a run records, the next run of the same job replays; a journal of
// other inputs, a changed input, a tail cut by a crash or a damaged record is not replayed; a
// second run of the job is kept out while the first holds the file.
#include "actors/diffusion/model_call_journal.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "tests/util/temp_dir.h"

namespace raylight::actors {
namespace {

constexpr int64_t kUnbounded = int64_t{1} << 40;

class ModelCallJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(std::random_device()());  // fresh inputs every run
    for (int i = 0; i < 4; ++i) {
      inputs_.push_back(at::randn({1, 4, 3, 5}));
      outputs_.push_back(i % 2 == 0 ? at::randn({2, 4, 3, 5})
                                    : at::randn({1, 4, 3, 5}).to(at::kBFloat16));
    }
  }

  std::unique_ptr<ModelCallJournal> Open(uint64_t fingerprint = 7) {
    auto journal =
        ModelCallJournal::Open(dir_.path(), "job-1", fingerprint, kUnbounded, absl::Hours(1));
    EXPECT_TRUE(journal.ok()) << journal.status();
    return journal.ok() ? *std::move(journal) : nullptr;
  }

  void Record(ModelCallJournal& journal, int calls) {
    for (int i = 0; i < calls; ++i) {
      ASSERT_TRUE(journal.Append(i, inputs_[i], 0.5 * i, i % 3, outputs_[i]).ok());
    }
  }

  std::string Path() const { return dir_.path() + "/job-1.journal"; }

  testing_util::TempDir dir_{"journal-test"};
  std::vector<at::Tensor> inputs_, outputs_;
};

TEST_F(ModelCallJournalTest, ANextRunReplaysWhatTheLastRecordedBitForBit) {
  Record(*Open(), 3);
  auto journal = Open();
  ASSERT_EQ(journal->recorded(), 3);
  for (int i = 0; i < 3; ++i) {
    auto out = journal->Replay(i, inputs_[i], 0.5 * i, i % 3);
    ASSERT_TRUE(out.has_value()) << i;
    EXPECT_EQ(out->scalar_type(), outputs_[i].scalar_type());
    EXPECT_TRUE(at::equal(*out, outputs_[i])) << i;
  }
  EXPECT_FALSE(journal->Replay(3, inputs_[3], 1.5, 0).has_value());  // not recorded
  // It goes on recording after the replayed calls.
  ASSERT_TRUE(journal->Append(3, inputs_[3], 1.5, 0, outputs_[3]).ok());
  journal.reset();
  EXPECT_EQ(Open()->recorded(), 4);
}

TEST_F(ModelCallJournalTest, AnotherInputEndsTheReplay) {
  Record(*Open(), 3);
  auto journal = Open();
  EXPECT_FALSE(journal->Replay(0, inputs_[0] + 1e-6, 0.0, 0).has_value());
  // Ended: even the recorded calls after it are computed.
  EXPECT_FALSE(journal->Replay(1, inputs_[1], 0.5, 1).has_value());
  journal.reset();
  auto other = Open();
  EXPECT_FALSE(other->Replay(0, inputs_[0], 0.1, 0).has_value());  // another timestep
}

TEST_F(ModelCallJournalTest, AJournalOfOtherInputsStartsOver) {
  Record(*Open(/*fingerprint=*/7), 3);
  EXPECT_EQ(Open(/*fingerprint=*/8)->recorded(), 0);
  EXPECT_EQ(Open(/*fingerprint=*/7)->recorded(), 0);  // overwritten by the other job's run
}

TEST_F(ModelCallJournalTest, ATailCutByACrashIsDropped) {
  Record(*Open(), 3);
  const auto full = std::filesystem::file_size(Path());
  std::filesystem::resize_file(Path(), full - 5);
  auto journal = Open();
  EXPECT_EQ(journal->recorded(), 2);
  EXPECT_TRUE(journal->Replay(1, inputs_[1], 0.5, 1).has_value());
  ASSERT_TRUE(journal->Append(2, inputs_[2], 1.0, 2, outputs_[2]).ok());
  journal.reset();
  EXPECT_EQ(Open()->recorded(), 3);
}

TEST_F(ModelCallJournalTest, ADamagedRecordIsNotReplayed) {
  Record(*Open(), 2);
  {
    std::fstream file(Path(), std::ios::in | std::ios::out | std::ios::binary);
    const auto size = std::filesystem::file_size(Path());
    file.seekp(static_cast<std::streamoff>(size - 3));
    file.put('\x5a');  // inside the last record's output bytes
  }
  auto journal = Open();
  ASSERT_EQ(journal->recorded(), 2);
  EXPECT_TRUE(journal->Replay(0, inputs_[0], 0.0, 0).has_value());
  EXPECT_FALSE(journal->Replay(1, inputs_[1], 0.5, 1).has_value());
}

TEST_F(ModelCallJournalTest, ASecondRunIsKeptOutAndRemoveEndsTheJournal) {
  auto first = Open();
  auto second = ModelCallJournal::Open(dir_.path(), "job-1", 7, kUnbounded, absl::Hours(1));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  Record(*first, 2);
  first->Remove();
  first.reset();
  EXPECT_FALSE(std::filesystem::exists(Path()));
  EXPECT_EQ(Open()->recorded(), 0);
}

TEST_F(ModelCallJournalTest, PastItsBoundCallsAreNoLongerRecorded) {
  auto journal = ModelCallJournal::Open(dir_.path(), "job-1", 7, /*max_bytes=*/400, absl::Hours(1));
  ASSERT_TRUE(journal.ok());
  EXPECT_TRUE((*journal)->Append(0, inputs_[1], 0.0, 0, outputs_[1]).ok());  // 120 bytes of bf16
  EXPECT_EQ((*journal)->Append(1, inputs_[0], 0.5, 1, outputs_[0]).code(),
            absl::StatusCode::kResourceExhausted);
  journal->reset();
  EXPECT_EQ(Open()->recorded(), 1);
}

TEST_F(ModelCallJournalTest, AJobIdThatIsNotAFileNameIsRefused) {
  for (const char* id : {"", "../x", "a/b", ".hidden"}) {
    EXPECT_EQ(
        ModelCallJournal::Open(dir_.path(), id, 7, kUnbounded, absl::Hours(1)).status().code(),
        absl::StatusCode::kInvalidArgument)
        << id;
  }
}

}  // namespace
}  // namespace raylight::actors
