#include "models/core/png.h"

#include <png.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "models/core/image_file.h"

namespace raylight::models {
namespace {

// libpng reports errors through longjmp by default; its simplified API (png_image_*) returns a
// flag and a message instead, which is what a Status wants.
absl::Status Failed(const char* what, const png_image& image) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", image.message));
}

}  // namespace

absl::StatusOr<std::string> EncodePng(const RgbImage& image) {
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return absl::InvalidArgumentError(absl::StrCat("png: image ", image.width, "x", image.height,
                                                   " with ", image.pixels.size(), " bytes"));
  }
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = image.width;
  png.height = image.height;
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), 0, nullptr)) {
    return Failed("png encode", png);
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    return Failed("png encode", png);
  }
  out.resize(size);
  return out;
}

namespace {

// libpng's simplified reader past the header, the pixel bound checked; png_image_free after.
absl::Status BeginRead(const std::string& bytes, png_image& png) {
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    return Failed("png decode", png);
  }
  if (static_cast<int64_t>(png.width) * png.height > kMaxImagePixels) {
    png_image_free(&png);
    return absl::InvalidArgumentError(absl::StrCat("png decode: ", png.width, "x", png.height,
                                                   " pixels; at most ", kMaxImagePixels));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImageSize> ReadPngHeader(const std::string& bytes) {
  png_image png;
  if (absl::Status begun = BeginRead(bytes, png); !begun.ok()) return begun;
  const ImageSize size{static_cast<int>(png.width), static_cast<int>(png.height)};
  png_image_free(&png);
  return size;
}

absl::StatusOr<RgbImage> DecodePng(const std::string& bytes) {
  png_image png;
  if (absl::Status begun = BeginRead(bytes, png); !begun.ok()) return begun;
  png.format = PNG_FORMAT_RGB;
  RgbImage image;
  image.width = png.width;
  image.height = png.height;
  image.pixels.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr)) {
    png_image_free(&png);
    return Failed("png decode", png);
  }
  return image;
}

}  // namespace raylight::models
