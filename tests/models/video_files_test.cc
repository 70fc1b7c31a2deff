// Video files read back with the libraries players use: an MP4 through libavformat and
// libavcodec (frame count, size, frame rate, pixels within the codec's error), an animated WebP
// through libwebp's demuxer (lossless: the same pixels; timestamps at 1/fps). Random frames each
// run: smooth moving gradients (what a codec meets in a video) plus a little noise.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
}
#include <gtest/gtest.h>
#include <webp/demux.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "models/core/safetensors.h"
#include "models/media/frames_file.h"
#include "models/media/mp4_writer.h"
#include "models/media/webp_writer.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::media {
namespace {

VideoFrames RandomFrames(int width, int height, int count, double fps) {
  std::mt19937 random(std::random_device{}());
  std::uniform_real_distribution<double> phase(0, 6.28);
  std::uniform_int_distribution<int> noise(-3, 3);
  const double a = phase(random), b = phase(random), c = phase(random);
  VideoFrames frames{.width = width, .height = height, .count = count, .fps = fps};
  frames.rgb.resize(static_cast<size_t>(width) * height * count * 3);
  size_t i = 0;
  for (int f = 0; f < count; ++f) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const double u = x / 17.0 + f * 0.2, v = y / 13.0 - f * 0.1;
        for (double base : {std::sin(u + a), std::cos(v + b), std::sin(u * 0.5 + v + c)}) {
          const int value = static_cast<int>(128 + 100 * base) + noise(random);
          frames.rgb[i++] = static_cast<uint8_t>(std::clamp(value, 0, 255));
        }
      }
    }
  }
  return frames;
}

struct Decoded {
  int width = 0, height = 0, count = 0;
  AVRational rate{0, 1};
  std::vector<uint8_t> first_rgb;
};

// The MP4 as a player opens it (from a file: the demuxer's own IO).
Decoded DecodeMp4(const std::string& path) {
  Decoded decoded;
  AVFormatContext* format = nullptr;
  EXPECT_EQ(avformat_open_input(&format, path.c_str(), nullptr, nullptr), 0);
  if (format == nullptr) return decoded;
  EXPECT_GE(avformat_find_stream_info(format, nullptr), 0);
  const int index = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  EXPECT_GE(index, 0);
  AVStream* stream = format->streams[index];
  decoded.rate = stream->avg_frame_rate;
  const AVCodec* codec = avcodec_find_decoder(stream->codecpar->codec_id);
  EXPECT_EQ(stream->codecpar->codec_id, AV_CODEC_ID_H264);
  AVCodecContext* context = avcodec_alloc_context3(codec);
  avcodec_parameters_to_context(context, stream->codecpar);
  EXPECT_EQ(avcodec_open2(context, codec, nullptr), 0);
  EXPECT_EQ(context->pix_fmt, AV_PIX_FMT_YUV420P);
  decoded.width = context->width;
  decoded.height = context->height;
  AVPacket* packet = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  auto receive = [&] {
    while (avcodec_receive_frame(context, frame) == 0) {
      if (decoded.count++ == 0) {
        decoded.first_rgb.resize(static_cast<size_t>(frame->width) * frame->height * 3);
        SwsContext* convert =
            sws_getContext(frame->width, frame->height, AV_PIX_FMT_YUV420P, frame->width,
                           frame->height, AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr);
        uint8_t* planes[1] = {decoded.first_rgb.data()};
        const int strides[1] = {frame->width * 3};
        sws_scale(convert, frame->data, frame->linesize, 0, frame->height, planes, strides);
        sws_freeContext(convert);
      }
    }
  };
  while (av_read_frame(format, packet) == 0) {
    if (packet->stream_index == index) {
      avcodec_send_packet(context, packet);
      receive();
    }
    av_packet_unref(packet);
  }
  avcodec_send_packet(context, nullptr);
  receive();
  av_frame_free(&frame);
  av_packet_free(&packet);
  avcodec_free_context(&context);
  avformat_close_input(&format);
  return decoded;
}

double MeanAbsDiff(const uint8_t* a, const uint8_t* b, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
  return sum / static_cast<double>(n);
}

TEST(VideoFilesTest, AnMp4ReadsBackWithItsFramesSizeAndRate) {
  testing_util::TempDir dir("video");
  const VideoFrames frames = RandomFrames(96, 64, 17, 16);
  auto mp4 = EncodeMp4(frames, {.crf = 12, .preset = "fast"});
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  const std::string path = dir.path() + "/x.mp4";
  std::ofstream(path, std::ios::binary) << *mp4;
  const Decoded decoded = DecodeMp4(path);
  EXPECT_EQ(decoded.count, 17);
  EXPECT_EQ(decoded.width, 96);
  EXPECT_EQ(decoded.height, 64);
  EXPECT_EQ(decoded.rate.num, 16);
  EXPECT_EQ(decoded.rate.den, 1);
  ASSERT_EQ(decoded.first_rgb.size(), size_t{96} * 64 * 3);
  // 4:2:0 chroma and crf 12: a few levels of 255 on average (100 runs: mean 2.7, standard
  // deviation 0.16, at most 3.0).
  EXPECT_LT(MeanAbsDiff(decoded.first_rgb.data(), frames.rgb.data(), decoded.first_rgb.size()),
            4.0);
}

TEST(VideoFilesTest, OddSizesArePaddedToEvenWithTheirLastRowAndColumn) {
  testing_util::TempDir dir("video");
  const VideoFrames frames = RandomFrames(65, 47, 5, 24);
  auto mp4 = EncodeMp4(frames, {.crf = 12, .preset = "fast"});
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  std::ofstream(dir.path() + "/odd.mp4", std::ios::binary) << *mp4;
  const Decoded decoded = DecodeMp4(dir.path() + "/odd.mp4");
  EXPECT_EQ(decoded.count, 5);
  EXPECT_EQ(decoded.width, 66);
  EXPECT_EQ(decoded.height, 48);
  EXPECT_EQ(decoded.rate.num, 24);
  // The original area reads back within codec error.
  double sum = 0;
  for (int y = 0; y < 47; ++y) {
    sum +=
        MeanAbsDiff(decoded.first_rgb.data() + y * 66 * 3, frames.rgb.data() + y * 65 * 3, 65 * 3);
  }
  // Measured over 100 runs: mean 4.7, standard deviation 0.47, at most 5.7; 8 is 7 deviations out.
  EXPECT_LT(sum / 47, 8.0);
}

TEST(VideoFilesTest, ALosslessWebpHoldsEveryFrameExactly) {
  const VideoFrames frames = RandomFrames(40, 24, 6, 16);
  auto webp = EncodeAnimatedWebp(frames, {.lossless = true, .quality = 50});
  ASSERT_TRUE(webp.ok()) << webp.status();
  WebPData data{reinterpret_cast<const uint8_t*>(webp->data()), webp->size()};
  WebPAnimDecoderOptions options;
  ASSERT_TRUE(WebPAnimDecoderOptionsInit(&options));
  options.color_mode = MODE_RGBA;  // the animation decoder's only non-premultiplied RGB order
  WebPAnimDecoder* decoder = WebPAnimDecoderNew(&data, &options);
  ASSERT_NE(decoder, nullptr);
  WebPAnimInfo info;
  ASSERT_TRUE(WebPAnimDecoderGetInfo(decoder, &info));
  EXPECT_EQ(info.frame_count, 6u);
  EXPECT_EQ(info.canvas_width, 40u);
  EXPECT_EQ(info.canvas_height, 24u);
  EXPECT_EQ(info.loop_count, 0u);
  const size_t frame_bytes = size_t{40} * 24 * 3;
  for (int f = 0; WebPAnimDecoderHasMoreFrames(decoder); ++f) {
    uint8_t* pixels = nullptr;
    int timestamp = 0;
    ASSERT_TRUE(WebPAnimDecoderGetNext(decoder, &pixels, &timestamp));
    EXPECT_EQ(timestamp, static_cast<int>(std::lround((f + 1) * 1000.0 / 16)));  // frame end
    std::vector<uint8_t> rgb;
    for (size_t p = 0; p < frame_bytes / 3; ++p)
      rgb.insert(rgb.end(), pixels + 4 * p, pixels + 4 * p + 3);
    EXPECT_EQ(std::memcmp(rgb.data(), frames.rgb.data() + f * frame_bytes, frame_bytes), 0)
        << "frame " << f;
  }
  WebPAnimDecoderDelete(decoder);
  auto lossy = EncodeAnimatedWebp(frames, {.lossless = false, .quality = 80});
  ASSERT_TRUE(lossy.ok()) << lossy.status();
  EXPECT_LT(lossy->size(), webp->size());
}

// ComfyUI's IMAGE in a safetensors file becomes bytes as ComfyUI's savers make them
// (np.clip(255 * x, 0, 255).astype(np.uint8): truncated), then a file through the tool.
TEST(VideoFilesTest, AComfyUiImageFileBecomesAVideoThroughTheTool) {
  testing_util::TempDir dir("video");
  const std::vector<float> values = {0.5f, 1.0f, 1.2f, -0.1f, 0.999f, 0.0f};  // one 1x2 frame
  const std::vector<uint8_t> want = {127, 255, 255, 0, 254, 0};
  std::vector<StTensorInfo> tensors = {
      {.name = "images", .dtype = StDtype::kF32, .shape = {1, 1, 2, 3}, .begin = 0, .end = 24}};
  std::string file = BuildSafetensorsHeader(tensors, {});
  file.append(reinterpret_cast<const char*>(values.data()), 24);
  const std::string path = dir.path() + "/image.safetensors";
  std::ofstream(path, std::ios::binary) << file;
  auto frames = ReadFramesFile(path, 16);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_EQ(frames->rgb, want);
  EXPECT_EQ(frames->count, 1);
  EXPECT_EQ(frames->width, 2);

  // Five random frames as uint8, through raylight-write-video to every kind of output.
  const VideoFrames random = RandomFrames(32, 16, 5, 16);
  tensors = {{.name = "images",
              .dtype = StDtype::kU8,
              .shape = {5, 16, 32, 3},
              .begin = 0,
              .end = random.rgb.size()}};
  file = BuildSafetensorsHeader(tensors, {});
  file.append(reinterpret_cast<const char*>(random.rgb.data()), random.rgb.size());
  std::ofstream(dir.path() + "/frames.safetensors", std::ios::binary) << file;
  for (const std::string out : {"/x.mp4", "/x.webp", "/frames"}) {
    const absl::Status ran = testing_util::RunToCompletion(
        {RAYLIGHT_WRITE_VIDEO, "--frames=" + dir.path() + "/frames.safetensors",
         "--out=" + dir.path() + out},
        dir.path() + "/tool.log", std::chrono::seconds(60));
    EXPECT_TRUE(ran.ok()) << ran << out;
  }
  EXPECT_EQ(DecodeMp4(dir.path() + "/x.mp4").count, 5);
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/frames/00004.png"));
  // Five frames are not one PNG.
  EXPECT_FALSE(testing_util::RunToCompletion(
                   {RAYLIGHT_WRITE_VIDEO, "--frames=" + dir.path() + "/frames.safetensors",
                    "--out=" + dir.path() + "/one.png"},
                   dir.path() + "/tool.log", std::chrono::seconds(60))
                   .ok());
}

TEST(VideoFilesTest, BadFramesAreRefusedNamingTheField) {
  VideoFrames frames = RandomFrames(16, 16, 2, 16);
  frames.rgb.pop_back();
  auto short_frames = EncodeMp4(frames);
  ASSERT_FALSE(short_frames.ok());
  EXPECT_NE(short_frames.status().message().find("frames:"), std::string::npos);
  frames = RandomFrames(16, 16, 2, 0);
  auto no_rate = EncodeAnimatedWebp(frames);
  ASSERT_FALSE(no_rate.ok());
  EXPECT_NE(no_rate.status().message().find("fps"), std::string::npos);
  frames.fps = 16;
  auto bad_crf = EncodeMp4(frames, {.crf = 99});
  ASSERT_FALSE(bad_crf.ok());
  EXPECT_NE(bad_crf.status().message().find("crf"), std::string::npos);
  frames.count = 0;
  frames.rgb.clear();
  EXPECT_FALSE(EncodeMp4(frames).ok());
}

}  // namespace
}  // namespace raylight::models::media
