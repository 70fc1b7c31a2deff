#include "runtime/head/placement.h"

#include <gtest/gtest.h>

namespace raylight::head {
namespace {

std::vector<FreeWorkers> TwoNodes() {
  return {{"a", {"a/w0", "a/w1"}}, {"b", {"b/w0", "b/w1", "b/w2"}}};
}

TEST(PlacementTest, PackFillsTheFullestNodeFirst) {
  auto placed = PlaceRanks(TwoNodes(), 4, v1::PACK, "cpu");
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(*placed, (std::vector<std::string>{"b/w0", "b/w1", "b/w2", "a/w0"}));
}

TEST(PlacementTest, SpreadAlternatesNodes) {
  auto placed = PlaceRanks(TwoNodes(), 4, v1::SPREAD, "cpu");
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(*placed, (std::vector<std::string>{"b/w0", "a/w0", "b/w1", "a/w1"}));
}

TEST(PlacementTest, StrictPackStaysOnOneNodeOrFails) {
  auto placed = PlaceRanks(TwoNodes(), 3, v1::STRICT_PACK, "cpu");
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(*placed, (std::vector<std::string>{"b/w0", "b/w1", "b/w2"}));
  auto too_many = PlaceRanks(TwoNodes(), 4, v1::STRICT_PACK, "cpu");
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(too_many.status().message().find("STRICT_PACK"), std::string::npos);
}

TEST(PlacementTest, NotEnoughWorkersNamesWhatIsFree) {
  auto placed = PlaceRanks(TwoNodes(), 6, v1::PACK, "gpu");
  EXPECT_EQ(placed.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(placed.status().message().find("b: 3"), std::string::npos) << placed.status();
}

}  // namespace
}  // namespace raylight::head
