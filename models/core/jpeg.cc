// JPEG decoding through libjpeg (Debian's libjpeg62-turbo): libjpeg reports errors by calling
// error_exit, which must not return, so it longjmps back to DecodeJpeg's setjmp.
#include <csetjmp>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "models/core/image_file.h"

#ifdef RAYLIGHT_WITH_JPEG
#include <jpeglib.h>
#endif

namespace raylight::models {

#ifdef RAYLIGHT_WITH_JPEG
namespace {

struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void OnError(j_common_ptr info) {
  auto* errors = reinterpret_cast<ErrorManager*>(info->err);
  (*info->err->format_message)(info, errors->message);
  std::longjmp(errors->jump, 1);
}

void Quiet(j_common_ptr) {}  // warnings (a truncated file, ...) are not printed to stderr

// The header, its checks, and with `image` the pixels: one function, because the setjmp that
// libjpeg's errors return to must be in the frame that calls libjpeg. Everything declared before
// the setjmp: a longjmp then skips no destructor.
absl::StatusOr<ImageSize> ReadJpeg(const std::string& bytes, RgbImage* image) {
  ImageSize size;
  absl::Status refused;
  jpeg_decompress_struct info;
  ErrorManager errors;
  info.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = OnError;
  errors.base.output_message = Quiet;
  errors.message[0] = '\0';
  if (setjmp(errors.jump) != 0) {
    jpeg_destroy_decompress(&info);
    return absl::InvalidArgumentError(absl::StrCat("jpeg decode: ", errors.message));
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  size = {static_cast<int>(info.image_width), static_cast<int>(info.image_height)};
  if (static_cast<int64_t>(size.width) * size.height > kMaxImagePixels) {
    refused = absl::InvalidArgumentError(absl::StrCat("jpeg decode: ", size.width, "x", size.height,
                                                      " pixels; at most ", kMaxImagePixels));
  } else if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    // libjpeg converts grey and YCbCr to RGB, not CMYK.
    refused = absl::InvalidArgumentError("jpeg decode: a CMYK JPEG (save it as RGB)");
  }
  if (!refused.ok() || image == nullptr) {
    jpeg_destroy_decompress(&info);
    if (!refused.ok()) return refused;
    return size;
  }
  info.out_color_space = JCS_RGB;
  jpeg_start_decompress(&info);
  image->width = static_cast<int>(info.output_width);
  image->height = static_cast<int>(info.output_height);
  image->pixels.resize(static_cast<size_t>(image->width) * image->height * 3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row =
        image->pixels.data() + static_cast<size_t>(info.output_scanline) * image->width * 3;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return size;
}

}  // namespace

absl::StatusOr<RgbImage> DecodeJpeg(const std::string& bytes) {
  RgbImage image;
  if (absl::StatusOr<ImageSize> read = ReadJpeg(bytes, &image); !read.ok()) return read.status();
  return image;
}

absl::StatusOr<ImageSize> ReadJpegHeader(const std::string& bytes) {
  return ReadJpeg(bytes, nullptr);
}

#else

absl::StatusOr<ImageSize> ReadJpegHeader(const std::string&) {
  return absl::FailedPreconditionError(
      "jpeg decode: this build has no JPEG support (libjpeg was not found); give a PNG");
}

absl::StatusOr<RgbImage> DecodeJpeg(const std::string&) {
  return absl::FailedPreconditionError(
      "jpeg decode: this build has no JPEG support (libjpeg was not found); give a PNG");
}

#endif

}  // namespace raylight::models
