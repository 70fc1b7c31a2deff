// 8-bit RGB images to and from PNG bytes, through libpng (Debian's libpng16: the reference
// implementation, everywhere, and the one thing here that needs no torch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // row-major, 3 bytes per pixel
};

absl::StatusOr<std::string> EncodePng(const RgbImage& image);
absl::StatusOr<RgbImage> DecodePng(const std::string& png);

}  // namespace raylight::models
