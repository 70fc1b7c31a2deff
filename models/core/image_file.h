// Still images in, 8-bit RGB out: PNG (libpng) or JPEG (libjpeg-turbo's libjpeg API, the
// decoder Pillow uses, with its defaults: ComfyUI's LoadImage sees the same pixels), told apart
// by their signatures. Images over kMaxImagePixels are refused before anything is allocated
// (a few KB of PNG or JPEG can claim gigapixels).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "models/core/png.h"

namespace raylight::models {

inline constexpr int64_t kMaxImagePixels = int64_t{8192} * 4096;

// Errors say what the bytes are not ("not a PNG or JPEG image") or why they do not decode.
absl::StatusOr<RgbImage> DecodeImage(const std::string& bytes);

struct ImageSize {
  int width = 0;
  int height = 0;
};
// The signature and the header only (microseconds: what a daemon's I/O thread may afford): the
// format, the size, and the pixel bound. The pixels may still be corrupt.
absl::StatusOr<ImageSize> ReadImageHeader(const std::string& bytes);

// One format alone; JPEG's give FAILED_PRECONDITION when built without libjpeg.
absl::StatusOr<RgbImage> DecodeJpeg(const std::string& bytes);
absl::StatusOr<ImageSize> ReadJpegHeader(const std::string& bytes);
absl::StatusOr<ImageSize> ReadPngHeader(const std::string& bytes);

}  // namespace raylight::models
