#include "models/core/image_file.h"

#include "absl/strings/str_cat.h"

namespace raylight::models {

namespace {

bool IsPng(const std::string& bytes) {
  static constexpr char kPng[] = "\x89PNG\r\n\x1a\n";
  return bytes.size() >= 8 && bytes.compare(0, 8, kPng, 8) == 0;
}

bool IsJpeg(const std::string& bytes) {
  return bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
         static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF;
}

}  // namespace

absl::StatusOr<RgbImage> DecodeImage(const std::string& bytes) {
  if (IsPng(bytes)) return DecodePng(bytes);
  if (IsJpeg(bytes)) return DecodeJpeg(bytes);
  return absl::InvalidArgumentError("not a PNG or JPEG image");
}

absl::StatusOr<ImageSize> ReadImageHeader(const std::string& bytes) {
  if (IsPng(bytes)) return ReadPngHeader(bytes);
  if (IsJpeg(bytes)) return ReadJpegHeader(bytes);
  return absl::InvalidArgumentError("not a PNG or JPEG image");
}

}  // namespace raylight::models
