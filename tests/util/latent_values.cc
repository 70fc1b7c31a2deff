#include "tests/util/latent_values.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/core/safetensors.h"

namespace raylight::testing_util {

LatentValues ReadLatentValues(const std::string& bytes) {
  LatentValues latent;
  auto header = models::ParseSafetensors(bytes, "latent");
  EXPECT_TRUE(header.ok()) << header.status();
  if (!header.ok()) return latent;
  const models::StTensorInfo* info = header->Find("latent_tensor");
  EXPECT_NE(info, nullptr);
  if (info == nullptr) return latent;
  EXPECT_EQ(info->dtype, models::StDtype::kF32);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  const char* data = bytes.data() + 8 + header_bytes;
  latent.shape = info->shape;
  latent.values.resize((info->end - info->begin) / sizeof(float));
  std::memcpy(latent.values.data(), data + info->begin, info->end - info->begin);
  return latent;
}

double MaxAbsDiff(const LatentValues& a, const LatentValues& b) {
  EXPECT_EQ(a.values.size(), b.values.size());
  if (a.values.size() != b.values.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.values.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a.values[i]) - b.values[i]));
  }
  return worst;
}

double RelativeL2(const LatentValues& a, const LatentValues& b) {
  EXPECT_EQ(a.values.size(), b.values.size());
  if (a.values.size() != b.values.size() || b.values.empty()) return INFINITY;
  double difference = 0, reference = 0;
  for (size_t i = 0; i < a.values.size(); ++i) {
    const double d = static_cast<double>(a.values[i]) - b.values[i];
    difference += d * d;
    reference += static_cast<double>(b.values[i]) * b.values[i];
  }
  return std::sqrt(difference / reference);
}

}  // namespace raylight::testing_util
