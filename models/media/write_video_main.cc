// raylight-write-video: frames (a safetensors file holding ComfyUI's IMAGE, "images" [F, H, W, 3])
// to a video file: .mp4 (H.264, yuv420p), .webp (animated), .png (one frame), or a directory of
// numbered PNG frames.
//
//   raylight-write-video --frames frames.safetensors --out fox.mp4 [--fps 16 --crf 19]
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "models/core/png.h"
#include "models/media/frames_file.h"
#include "models/media/mp4_writer.h"
#include "models/media/webp_writer.h"

namespace {

absl::Status WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> Frame(const raylight::models::media::VideoFrames& frames, int index) {
  raylight::models::RgbImage image{.width = frames.width, .height = frames.height};
  const size_t bytes = static_cast<size_t>(frames.width) * frames.height * 3;
  image.pixels.assign(frames.rgb.begin() + index * bytes, frames.rgb.begin() + (index + 1) * bytes);
  return raylight::models::EncodePng(image);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace raylight::models::media;
  CLI::App app("raylight-write-video: frames to .mp4, .webp, .png or a folder of PNG frames");
  std::string input, out;
  double fps = 16;
  Mp4Options mp4;
  WebpOptions webp;
  app.add_option("--frames", input, "safetensors with 'images' [F, H, W, 3]")->required();
  app.add_option("--out", out, "x.mp4, x.webp, x.png (one frame) or a directory")->required();
  app.add_option("--fps", fps, "frames per second (Wan 2.1 / 2.2 14B: 16, TI2V-5B: 24)")
      ->capture_default_str();
  app.add_option("--crf", mp4.crf, "mp4: x264's quality (0 best .. 51)")->capture_default_str();
  app.add_option("--preset", mp4.preset, "mp4: x264's speed preset")->capture_default_str();
  app.add_flag("--lossless", webp.lossless, "webp: lossless");
  app.add_option("--quality", webp.quality, "webp: quality 0..100")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto frames = ReadFramesFile(input, fps);
  if (!frames.ok()) {
    std::cerr << frames.status() << "\n";
    return 1;
  }
  absl::Status written;
  if (absl::EndsWith(out, ".mp4")) {
    auto bytes = EncodeMp4(*frames, mp4);
    written = bytes.ok() ? WriteBytes(out, *bytes) : bytes.status();
  } else if (absl::EndsWith(out, ".webp")) {
    auto bytes = EncodeAnimatedWebp(*frames, webp);
    written = bytes.ok() ? WriteBytes(out, *bytes) : bytes.status();
  } else if (absl::EndsWith(out, ".png")) {
    if (frames->count != 1) {
      written = absl::InvalidArgumentError(absl::StrCat(
          "--out: ", frames->count, " frames do not fit one PNG; name a directory for frames"));
    } else {
      auto bytes = Frame(*frames, 0);
      written = bytes.ok() ? WriteBytes(out, *bytes) : bytes.status();
    }
  } else {
    std::filesystem::create_directories(out);
    for (int i = 0; i < frames->count && written.ok(); ++i) {
      auto bytes = Frame(*frames, i);
      written =
          bytes.ok() ? WriteBytes(absl::StrFormat("%s/%05d.png", out, i), *bytes) : bytes.status();
    }
  }
  if (!written.ok()) {
    std::cerr << written << "\n";
    return 1;
  }
  std::cout << out << ": " << frames->count << " frames of " << frames->width << "x"
            << frames->height << " at " << fps << " fps\n";
  return 0;
}
