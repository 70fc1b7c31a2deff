// The Store conformance suite: every Store implementation instantiates it with a factory
// (INSTANTIATE_TEST_SUITE_P(Name, StoreConformanceTest, testing::Values(StoreFactory{...}))).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "runtime/common/store.h"

namespace raylight {

struct StoreFactory {
  std::string name;
  // Makes a fresh, empty store; `scratch` is a directory the store may use.
  std::function<std::unique_ptr<Store>(const std::string& scratch)> make;
};
inline void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }
inline std::string StoreFactoryName(const testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

class StoreConformanceTest : public testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::string RandomValue();

  std::mt19937_64 rng_{std::random_device{}()};
  std::filesystem::path scratch_;
  std::unique_ptr<Store> store_;
};

}  // namespace raylight
