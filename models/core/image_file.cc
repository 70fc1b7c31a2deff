#include "models/core/image_file.h"

#include "absl/strings/str_cat.h"

namespace raylight::models {

absl::StatusOr<RgbImage> DecodeImage(const std::string& bytes) {
  static constexpr char kPng[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() >= 8 && bytes.compare(0, 8, kPng, 8) == 0) return DecodePng(bytes);
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
      static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF) {
    return DecodeJpeg(bytes);
  }
  return absl::InvalidArgumentError("not a PNG or JPEG image");
}

}  // namespace raylight::models
