// Still images for jobs (models/core/image_file.h): JPEGs decode to Pillow's pixels (Pillow is
// what ComfyUI's LoadImage uses; jpeg_reference.py), colour 4:2:0 and grey, with a fresh random
// image each run; PNGs round-trip; CMYK JPEGs, claimed gigapixels and other bytes are refused
// with a reason.
#include "models/core/image_file.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "tests/util/read_file.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

TEST(ImageFileTest, JpegsDecodeToPillowsPixels) {
  testing_util::TempDir dir("image_file");
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  const absl::Status ran = testing_util::RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_JPEG_REFERENCE, dir.path(), absl::StrCat(seed)},
      dir.path() + "/reference.log", std::chrono::seconds(120));
  ASSERT_TRUE(ran.ok()) << ran << testing_util::ReadFileOrEmpty(dir.path() + "/reference.log");
  for (const char* name : {"colour", "grey"}) {
    SCOPED_TRACE(name);
    auto image = DecodeImage(testing_util::ReadFileOrEmpty(dir.path() + "/" + name + ".jpg"));
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->width, 53);
    EXPECT_EQ(image->height, 37);
    const std::string expected = testing_util::ReadFileOrEmpty(dir.path() + "/" + name + ".rgb");
    ASSERT_EQ(image->pixels.size(), expected.size());
    EXPECT_EQ(std::string(image->pixels.begin(), image->pixels.end()), expected);
    auto header = ReadImageHeader(testing_util::ReadFileOrEmpty(dir.path() + "/" + name + ".jpg"));
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->width, 53);
    EXPECT_EQ(header->height, 37);
  }
  auto cmyk = DecodeImage(testing_util::ReadFileOrEmpty(dir.path() + "/cmyk.jpg"));
  ASSERT_FALSE(cmyk.ok());
  EXPECT_NE(cmyk.status().message().find("jpeg decode"), std::string::npos) << cmyk.status();
  auto huge = DecodeImage(testing_util::ReadFileOrEmpty(dir.path() + "/huge.jpg"));
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("60000x60000"), std::string::npos) << huge.status();
  // The header alone refuses both too (what the head checks).
  auto huge_header = ReadImageHeader(testing_util::ReadFileOrEmpty(dir.path() + "/huge.jpg"));
  ASSERT_FALSE(huge_header.ok());
  EXPECT_NE(huge_header.status().message().find("60000x60000"), std::string::npos);
  auto cmyk_header = ReadImageHeader(testing_util::ReadFileOrEmpty(dir.path() + "/cmyk.jpg"));
  ASSERT_FALSE(cmyk_header.ok());
  EXPECT_NE(cmyk_header.status().message().find("CMYK"), std::string::npos);
}

TEST(ImageFileTest, PngsRoundTripAndOtherBytesAreRefused) {
  std::mt19937 random(std::random_device{}());
  RgbImage image;
  image.width = 7;
  image.height = 5;
  for (int i = 0; i < 7 * 5 * 3; ++i) image.pixels.push_back(random() % 256);
  auto png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();
  auto decoded = DecodeImage(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->pixels, image.pixels);
  auto header = ReadImageHeader(*png);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->width, 7);
  EXPECT_EQ(header->height, 5);
  for (const std::string& bad :
       {std::string("GIF89a...."), std::string(), std::string("\xff\xd8")}) {
    auto refused = DecodeImage(bad);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().message(), "not a PNG or JPEG image");
    EXPECT_FALSE(ReadImageHeader(bad).ok());
  }
  auto truncated = DecodeImage(png->substr(0, png->size() / 2));
  EXPECT_FALSE(truncated.ok());
}

}  // namespace
}  // namespace raylight::models
