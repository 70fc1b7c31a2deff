#include "runtime/common/store_conformance.h"

#include <unistd.h>

#include <limits>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/common/prefix_store.h"

namespace raylight {

void StoreConformanceTest::SetUp() {
  scratch_ = std::filesystem::temp_directory_path() /
             absl::StrCat("raylight_store_test_", ::getpid(), "_", rng_());
  store_ = GetParam().make(scratch_.string());
  ASSERT_NE(store_, nullptr);
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  std::filesystem::remove_all(scratch_);
}

std::string StoreConformanceTest::RandomValue() {
  std::string value(1 + rng_() % 64, '\0');
  for (char& c : value) c = static_cast<char>(rng_() % 256);  // arbitrary bytes, NUL included
  return value;
}

namespace {

using std::chrono::milliseconds;

TEST_P(StoreConformanceTest, SetThenGetReturnsTheBytes) {
  const std::string value = RandomValue();
  ASSERT_TRUE(store_->Set("a/b", value).ok());
  auto got = store_->Get("a/b", milliseconds(100));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, value);
  EXPECT_TRUE(*store_->Check("a/b"));
  EXPECT_FALSE(*store_->Check("a/c"));
}

TEST_P(StoreConformanceTest, GetWaitsForALaterSet) {
  const std::string value = RandomValue();
  std::thread writer([&] {
    // The reader is already waiting (or about to); either way it must see the value.
    ASSERT_TRUE(store_->Set("late", value).ok());
  });
  auto got = store_->Get("late", milliseconds(10'000));
  writer.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, value);
}

TEST_P(StoreConformanceTest, GetTimesOutNamingTheKey) {
  const auto start = std::chrono::steady_clock::now();
  auto got = store_->Get("never/set", milliseconds(200));
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(got.status().message().find("never/set"), absl::string_view::npos);
  EXPECT_GE(waited, milliseconds(190));
  EXPECT_LT(waited, milliseconds(5'000));
}

TEST_P(StoreConformanceTest, WaitCoversSeveralKeysWithOneDeadline) {
  ASSERT_TRUE(store_->Set("k1", "x").ok());
  EXPECT_EQ(store_->Wait({"k1", "k2"}, milliseconds(100)).code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(store_->Set("k2", "y").ok());
  EXPECT_TRUE(store_->Wait({"k1", "k2"}, milliseconds(100)).ok());
}

TEST_P(StoreConformanceTest, AddIsAtomicAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kAddsPerThread = 50;
  const int64_t start = static_cast<int64_t>(rng_() % 1000);
  ASSERT_TRUE(store_->Add("counter", start).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAddsPerThread; ++i) ASSERT_TRUE(store_->Add("counter", 1).ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(*store_->Add("counter", 0), start + kThreads * kAddsPerThread);
}

TEST_P(StoreConformanceTest, AddOnANonIntegerIsAnError) {
  ASSERT_TRUE(store_->Set("text", "not a number").ok());
  auto result = store_->Add("text", 1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("text"), absl::string_view::npos);
}

// Issue #23, item 10: a counter used to wrap past INT64_MAX. Now the add is refused and the
// counter keeps its value.
TEST_P(StoreConformanceTest, AddRefusesToLeaveTheInt64Range) {
  ASSERT_TRUE(store_->Add("big", std::numeric_limits<int64_t>::max() - 1).ok());
  auto over = store_->Add("big", 2);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kOutOfRange) << over.status();
  EXPECT_NE(over.status().message().find("big"), absl::string_view::npos);
  EXPECT_EQ(*store_->Add("big", 0), std::numeric_limits<int64_t>::max() - 1);
  ASSERT_TRUE(store_->Add("small", std::numeric_limits<int64_t>::min() + 1).ok());
  EXPECT_EQ(store_->Add("small", -2).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_P(StoreConformanceTest, CompareSetFollowsC10dSemantics) {
  // Absent key, non-empty expectation: nothing is set and the expectation comes back.
  EXPECT_EQ(*store_->CompareSet("cas", "old", "new"), "old");
  EXPECT_FALSE(*store_->Check("cas"));
  // Absent key, empty expectation: set.
  EXPECT_EQ(*store_->CompareSet("cas", "", "v1"), "v1");
  // Mismatch: unchanged, current value returned.
  EXPECT_EQ(*store_->CompareSet("cas", "zzz", "v2"), "v1");
  // Match: swapped.
  EXPECT_EQ(*store_->CompareSet("cas", "v1", "v2"), "v2");
  EXPECT_EQ(*store_->Get("cas", milliseconds(10)), "v2");
}

TEST_P(StoreConformanceTest, DeleteAndNumKeys) {
  const int64_t before = *store_->NumKeys();
  ASSERT_TRUE(store_->Set("d1", RandomValue()).ok());
  ASSERT_TRUE(store_->Set("d2", RandomValue()).ok());
  EXPECT_EQ(*store_->NumKeys(), before + 2);
  EXPECT_TRUE(*store_->Delete("d1"));
  EXPECT_FALSE(*store_->Delete("d1"));
  EXPECT_EQ(*store_->NumKeys(), before + 1);
  EXPECT_FALSE(*store_->Check("d1"));
}

TEST_P(StoreConformanceTest, PrefixStoresDoNotCollide) {
  PrefixStore a("group_a", *store_);
  PrefixStore b("group_b", *store_);
  ASSERT_TRUE(a.Set("id", "A").ok());
  ASSERT_TRUE(b.Set("id", "B").ok());
  EXPECT_EQ(*a.Get("id", milliseconds(10)), "A");
  EXPECT_EQ(*b.Get("id", milliseconds(10)), "B");
  EXPECT_EQ(*store_->Get("group_a/id", milliseconds(10)), "A");
}

}  // namespace
}  // namespace raylight
