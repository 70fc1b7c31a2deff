#include "models/media/mp4_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace raylight::models::media {
namespace {

std::string AvError(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof(text));
  return text;
}

absl::Status Failed(const char* what, int code) {
  return absl::InternalError(absl::StrCat("mp4: ", what, ": ", AvError(code)));
}

// The muxer writes into memory: a growable buffer with a position it may seek back to (the mp4
// muxer rewrites its header boxes at the end).
struct MemorySink {
  std::string data;
  int64_t position = 0;
};

int WritePacket(void* opaque, uint8_t* buffer, int size) {
  auto* sink = static_cast<MemorySink*>(opaque);
  const size_t end = static_cast<size_t>(sink->position) + static_cast<size_t>(size);
  if (sink->data.size() < end) sink->data.resize(end);
  std::memcpy(sink->data.data() + sink->position, buffer, static_cast<size_t>(size));
  sink->position = static_cast<int64_t>(end);
  return size;
}

int64_t Seek(void* opaque, int64_t offset, int whence) {
  auto* sink = static_cast<MemorySink*>(opaque);
  const int64_t size = static_cast<int64_t>(sink->data.size());
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
      return size;
    case SEEK_SET:
      sink->position = offset;
      break;
    case SEEK_CUR:
      sink->position += offset;
      break;
    case SEEK_END:
      sink->position = size + offset;
      break;
    default:
      return AVERROR(EINVAL);
  }
  return sink->position;
}

struct Deleters {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
  void operator()(AVFrame* f) const { av_frame_free(&f); }
  void operator()(AVPacket* p) const { av_packet_free(&p); }
  void operator()(SwsContext* s) const { sws_freeContext(s); }
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
  void operator()(AVFormatContext* f) const { avformat_free_context(f); }
};
template <typename T>
using Owned = std::unique_ptr<T, Deleters>;

// Sends `frame` (nullptr: flush) and writes every packet the encoder has ready.
absl::Status Drain(AVCodecContext* codec, AVFrame* frame, AVFormatContext* format, AVStream* stream,
                   AVPacket* packet) {
  if (int rc = avcodec_send_frame(codec, frame); rc < 0) return Failed("encode", rc);
  for (;;) {
    const int rc = avcodec_receive_packet(codec, packet);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return absl::OkStatus();
    if (rc < 0) return Failed("encode", rc);
    av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
    packet->stream_index = stream->index;
    if (int written = av_interleaved_write_frame(format, packet); written < 0) {
      return Failed("mux", written);
    }
  }
}

}  // namespace

absl::StatusOr<std::string> EncodeMp4(const VideoFrames& frames, const Mp4Options& options) {
  if (auto valid = CheckVideoFrames(frames); !valid.ok()) return valid;
  if (options.crf < 0 || options.crf > 51) {
    return absl::InvalidArgumentError(absl::StrCat("crf: ", options.crf, " is outside 0..51"));
  }
  // libx264 reports statistics through av_log at INFO level on every file: errors only. (The
  // level is process-wide; nothing else in a Raylight process logs through FFmpeg.)
  static const bool quiet = [] {
    av_log_set_level(AV_LOG_ERROR);
    return true;
  }();
  (void)quiet;
  const AVCodec* encoder = avcodec_find_encoder_by_name("libx264");
  if (encoder == nullptr) return absl::FailedPreconditionError("mp4: libavcodec has no libx264");
  const int width = (frames.width + 1) & ~1, height = (frames.height + 1) & ~1;

  AVFormatContext* raw_format = nullptr;
  if (int rc = avformat_alloc_output_context2(&raw_format, nullptr, "mp4", nullptr); rc < 0) {
    return Failed("muxer", rc);
  }
  Owned<AVFormatContext> format(raw_format);
  MemorySink sink;
  constexpr int kBufferBytes = 1 << 16;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kBufferBytes));
  Owned<AVIOContext> io(avio_alloc_context(buffer, kBufferBytes, /*write_flag=*/1, &sink, nullptr,
                                           WritePacket, Seek));
  format->pb = io.get();
  format->flags |= AVFMT_FLAG_CUSTOM_IO;

  Owned<AVCodecContext> codec(avcodec_alloc_context3(encoder));
  const AVRational rate = av_d2q(frames.fps, 100000);
  codec->width = width;
  codec->height = height;
  codec->pix_fmt = AV_PIX_FMT_YUV420P;
  codec->framerate = rate;
  codec->time_base = av_inv_q(rate);
  if (format->oformat->flags & AVFMT_GLOBALHEADER) codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* settings = nullptr;
  av_dict_set(&settings, "crf", absl::StrCat(options.crf).c_str(), 0);
  av_dict_set(&settings, "preset", options.preset.c_str(), 0);
  const int opened = avcodec_open2(codec.get(), encoder, &settings);
  av_dict_free(&settings);
  if (opened < 0) return Failed("libx264 (preset?)", opened);

  AVStream* stream = avformat_new_stream(format.get(), nullptr);
  if (stream == nullptr) return absl::InternalError("mp4: no stream");
  stream->time_base = codec->time_base;
  stream->avg_frame_rate = rate;
  if (int rc = avcodec_parameters_from_context(stream->codecpar, codec.get()); rc < 0) {
    return Failed("stream", rc);
  }
  if (int rc = avformat_write_header(format.get(), nullptr); rc < 0) return Failed("header", rc);

  Owned<SwsContext> convert(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height,
                                           AV_PIX_FMT_YUV420P, SWS_BICUBIC, nullptr, nullptr,
                                           nullptr));
  Owned<AVFrame> frame(av_frame_alloc());
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = width;
  frame->height = height;
  if (int rc = av_frame_get_buffer(frame.get(), 0); rc < 0) return Failed("frame", rc);
  Owned<AVPacket> packet(av_packet_alloc());
  std::vector<uint8_t> padded(static_cast<size_t>(width) * height * 3);
  const size_t row = static_cast<size_t>(frames.width) * 3;
  for (int i = 0; i < frames.count; ++i) {
    // The frame, its last column and row repeated where the size was odd.
    const uint8_t* source = frames.rgb.data() + static_cast<size_t>(i) * frames.height * row;
    for (int y = 0; y < height; ++y) {
      uint8_t* out = padded.data() + static_cast<size_t>(y) * width * 3;
      std::memcpy(out, source + static_cast<size_t>(std::min(y, frames.height - 1)) * row, row);
      if (width != frames.width) std::memcpy(out + row, out + row - 3, 3);
    }
    if (int rc = av_frame_make_writable(frame.get()); rc < 0) return Failed("frame", rc);
    const uint8_t* planes[1] = {padded.data()};
    const int strides[1] = {width * 3};
    sws_scale(convert.get(), planes, strides, 0, height, frame->data, frame->linesize);
    frame->pts = i;
    if (auto drained = Drain(codec.get(), frame.get(), format.get(), stream, packet.get());
        !drained.ok()) {
      return drained;
    }
  }
  if (auto drained = Drain(codec.get(), nullptr, format.get(), stream, packet.get());
      !drained.ok()) {
    return drained;
  }
  if (int rc = av_write_trailer(format.get()); rc < 0) return Failed("trailer", rc);
  avio_flush(io.get());
  return std::move(sink.data);
}

}  // namespace raylight::models::media
