#include "models/vae/wan_vae.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/checkpoint.h"
#include "models/vae/channel_norm.h"
#include "models/vae/wan_vae_keys.h"
#include "runtime/common/status_macros.h"

namespace raylight::models::vae {
namespace {

using at::Tensor;

// One decode or encode: the weights, the bands, and each causal convolution's state across
// chunks (the last input frames it needs, already halo-padded).
class Pass {
 public:
  Pass(const WanVaeConfig& config, const std::map<std::string, Tensor>& weights,
       const RowBands& bands)
      : c_(config), weights_(weights), bands_(bands) {}

  absl::StatusOr<Tensor> DecoderChunk(Tensor x, bool first_chunk);
  absl::StatusOr<Tensor> EncoderChunk(Tensor x);

 private:
  const Tensor& W(const std::string& name) const { return weights_.at(name); }
  bool HasWeight(const std::string& name) const { return weights_.contains(name); }

  // The convolution of x, or with `norm` (a norm's weight name) of silu(norm(x)).
  absl::StatusOr<Tensor> CausalConv(const Tensor& x, const std::string& name,
                                    const std::string& norm = "");
  Tensor Norm(const Tensor& x, const std::string& name) const;
  absl::StatusOr<Tensor> Residual(Tensor x, const std::string& name);
  absl::StatusOr<Tensor> Attention(const Tensor& x, const std::string& name);
  absl::StatusOr<Tensor> Resample(Tensor x, const std::string& name, bool up, bool temporal);
  absl::StatusOr<Tensor> Middle(Tensor x, const std::string& side);
  absl::StatusOr<Tensor> Head(Tensor x, const std::string& side);

  const WanVaeConfig& c_;
  const std::map<std::string, Tensor>& weights_;
  const RowBands& bands_;
  // Causal conv name -> its last input frames (at most two, padded as the conv reads them).
  std::map<std::string, Tensor> caches_;
  // Temporal upsamplers that have seen their first chunk (which they pass through unchanged).
  std::set<std::string> upsamplers_started_;
};

// [B, C, T, h, w] -> [B * T, C, h, w] and back.
Tensor FramesToImages(const Tensor& x) {
  return x.permute({0, 2, 1, 3, 4})
      .reshape({x.size(0) * x.size(2), x.size(1), x.size(3), x.size(4)});
}
Tensor ImagesToFrames(const Tensor& x, int64_t batch) {
  return x.reshape({batch, x.size(0) / batch, x.size(1), x.size(2), x.size(3)})
      .permute({0, 2, 1, 3, 4});
}

absl::StatusOr<Tensor> Pass::CausalConv(const Tensor& x, const std::string& name,
                                        const std::string& norm) {
  const Tensor& weight = W(name + ".weight");
  const Tensor& bias = W(name + ".bias");
  const int64_t kt = weight.size(2);
  const int64_t kh = weight.size(3);
  Tensor input = x;
  std::vector<int64_t> padding = {0, 0, 0};
  // Whether `input` still needs the norm: over bands the norm runs before the halo exchange.
  bool normalise = !norm.empty();
  if (kh == 3) {
    // One process: the convolution's own zero padding. Bands: the neighbours' rows.
    padding[2] = 1;
    if (bands_.split()) {
      if (normalise) input = ChannelRmsNorm(x, W(norm + ".gamma"), /*silu=*/true);
      normalise = false;
      RL_ASSIGN_OR_RETURN(input, bands_.PadRows(input, 3, 1, 1));
    } else {
      padding[1] = 1;
    }
  }
  if (kt != 3) {
    if (normalise) input = ChannelRmsNorm(input, W(norm + ".gamma"), /*silu=*/true);
    return at::conv3d(input, weight, bias, {1, 1, 1}, padding);
  }
  // The stream so far: the cached last two frames (zeros before the first chunk), then this
  // chunk, written (and normalised) straight into one buffer.
  Tensor& cache = caches_[name];
  const int64_t frames = input.size(2);
  std::vector<int64_t> shape = input.sizes().vec();
  shape[2] = 2 + frames;
  Tensor stream = at::empty(shape, input.options().memory_format(input.suggest_memory_format()));
  if (cache.defined()) {
    stream.narrow(2, 0, 2).copy_(cache);
  } else {
    stream.narrow(2, 0, 2).zero_();
  }
  if (normalise) {
    ChannelRmsNormInto(input, W(norm + ".gamma"), /*silu=*/true, stream.narrow(2, 2, frames));
  } else {
    stream.narrow(2, 2, frames).copy_(input);
  }
  // A copy, not a view: a view would keep the whole stream alive until the next chunk.
  cache = stream.narrow(2, frames, 2).clone();
  return at::conv3d(stream, weight, bias, {1, 1, 1}, padding);
}

// F.normalize over channels (eps 1e-12) times sqrt(C) times gamma (channel_norm.h).
Tensor Pass::Norm(const Tensor& x, const std::string& name) const {
  return ChannelRmsNorm(x, W(name + ".gamma"), /*silu=*/false);
}

absl::StatusOr<Tensor> Pass::Residual(Tensor x, const std::string& name) {
  Tensor shortcut = x;
  if (HasWeight(name + ".shortcut.weight")) {
    RL_ASSIGN_OR_RETURN(shortcut, CausalConv(x, name + ".shortcut"));
  }
  RL_ASSIGN_OR_RETURN(Tensor h, CausalConv(x, name + ".residual.2", name + ".residual.0"));
  RL_ASSIGN_OR_RETURN(h, CausalConv(h, name + ".residual.6", name + ".residual.3"));
  // The conv's output is this block's own: added in place, no third full-size tensor.
  return h.add_(shortcut);
}

// Single-head attention over each frame's pixels; a band's queries see every band's keys.
absl::StatusOr<Tensor> Pass::Attention(const Tensor& x, const std::string& name) {
  const int64_t batch = x.size(0), channels = x.size(1);
  const Tensor images = Norm(FramesToImages(x), name + ".norm");
  const Tensor qkv = at::conv2d(images, W(name + ".to_qkv.weight"), W(name + ".to_qkv.bias"));
  std::vector<Tensor> parts = qkv.chunk(3, 1);
  Tensor k = parts[1], v = parts[2];
  if (bands_.split()) {
    RL_ASSIGN_OR_RETURN(k, bands_.AllRows(k, 2));
    RL_ASSIGN_OR_RETURN(v, bands_.AllRows(v, 2));
  }
  // [BT, C, h, w] -> [BT, 1, h * w, C]
  auto tokens = [](const Tensor& t) { return t.flatten(2).transpose(1, 2).unsqueeze(1); };
  const Tensor out = at::scaled_dot_product_attention(tokens(parts[0]), tokens(k), tokens(v));
  const Tensor spatial = out.squeeze(1).transpose(1, 2).reshape(
      {images.size(0), channels, images.size(2), images.size(3)});
  const Tensor projected = at::conv2d(spatial, W(name + ".proj.weight"), W(name + ".proj.bias"));
  return ImagesToFrames(projected, batch) + x;
}

absl::StatusOr<Tensor> Pass::Resample(Tensor x, const std::string& name, bool up, bool temporal) {
  const int64_t batch = x.size(0);
  if (up && temporal) {
    // The first chunk passes through (one frame makes one); later chunks double their frames
    // with a causal conv whose stream starts at the second chunk.
    if (upsamplers_started_.insert(name).second == false) {
      RL_ASSIGN_OR_RETURN(Tensor doubled, CausalConv(x, name + ".time_conv"));
      const int64_t c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
      // [B, 2C, T, h, w] -> [B, 2, C, T, h, w] -> frames interleaved: [B, C, 2T, h, w]
      x = doubled.reshape({batch, 2, c, t, h, w})
              .permute({0, 2, 3, 1, 4, 5})
              .reshape({batch, c, 2 * t, h, w});
    }
  }
  Tensor images = FramesToImages(x);
  const Tensor& weight = W(name + ".resample.1.weight");
  const Tensor& bias = W(name + ".resample.1.bias");
  if (up) {
    images = at::_upsample_nearest_exact2d(
        images, std::vector<int64_t>{2 * images.size(2), 2 * images.size(3)});
    if (bands_.split()) {
      RL_ASSIGN_OR_RETURN(images, bands_.PadRows(images, 2, 1, 1));
      images = at::conv2d(images, weight, bias, at::IntArrayRef{1, 1}, at::IntArrayRef{0, 1});
    } else {
      images = at::conv2d(images, weight, bias, at::IntArrayRef{1, 1}, at::IntArrayRef{1, 1});
    }
  } else {
    // ZeroPad2d((0, 1, 0, 1)) then a stride-2 conv: one row below each band, one zero column.
    RL_ASSIGN_OR_RETURN(images, bands_.PadRows(images, 2, 0, 1));
    images = at::constant_pad_nd(images, {0, 1});
    images = at::conv2d(images, weight, bias, at::IntArrayRef{2, 2});
  }
  x = ImagesToFrames(images, batch);
  if (!up && temporal) {
    // Stride-2 causal conv over (last frame of the previous chunk, this chunk); the first chunk
    // passes through and is remembered.
    const std::string conv = name + ".time_conv";
    Tensor& cache = caches_[conv];
    if (!cache.defined()) {
      cache = x;
    } else {
      const Tensor input = at::cat({cache.narrow(2, cache.size(2) - 1, 1), x}, 2);
      cache = x.narrow(2, x.size(2) - 1, 1).clone();
      x = at::conv3d(input, W(conv + ".weight"), W(conv + ".bias"), {2, 1, 1});
    }
  }
  return x;
}

absl::StatusOr<Tensor> Pass::Middle(Tensor x, const std::string& side) {
  RL_ASSIGN_OR_RETURN(x, Residual(x, side + ".middle.0"));
  RL_ASSIGN_OR_RETURN(x, Attention(x, side + ".middle.1"));
  return Residual(x, side + ".middle.2");
}

absl::StatusOr<Tensor> Pass::Head(Tensor x, const std::string& side) {
  return CausalConv(x, side + ".head.2", side + ".head.0");
}

// Wan 2.2's shortcut around an upsampling level, added into the level's output `main`: x's
// channels spread over a 2x2 (x2 in time) neighbourhood; the first chunk keeps its last frame
// only. Read through a broadcast view of x and added through a split view of main: no copy of
// the full-size shortcut is made.
void AddDupUp(Tensor& main, const Tensor& x, int64_t factor_t, bool first_chunk) {
  const int64_t out_channels = main.size(1);
  const int64_t repeats = out_channels * factor_t * 4 / x.size(1);
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  // [b, c, repeats, ...] -> [b, out_channels, factor_t, 2 (row), 2 (column), t, h, w] ->
  // [b, out_channels, t, factor_t, h, 2, w, 2]
  Tensor source = x.unsqueeze(2)
                      .expand({b, c, repeats, t, h, w})
                      .reshape({b, out_channels, factor_t, 2, 2, t, h, w})
                      .permute({0, 1, 5, 2, 6, 3, 7, 4});
  int64_t kept = factor_t;
  if (first_chunk && factor_t > 1) {
    source = source.narrow(3, factor_t - 1, 1);
    kept = 1;
  }
  main.view({b, out_channels, t, kept, h, 2, w, 2}).add_(source);
}

// Wan 2.2's shortcut around a downsampling level: the mean of channel groups of the
// space(-time)-to-channel fold (time zero-padded at the front to a multiple of factor_t).
Tensor AvgDown(const Tensor& x, int64_t out_channels, int64_t factor_t, int64_t factor_s) {
  Tensor y = x;
  const int64_t pad_t = (factor_t - y.size(2) % factor_t) % factor_t;
  if (pad_t > 0) y = at::constant_pad_nd(y, {0, 0, 0, 0, pad_t, 0});
  const int64_t b = y.size(0), c = y.size(1), t = y.size(2), h = y.size(3), w = y.size(4);
  const int64_t factor = factor_t * factor_s * factor_s;
  y = y.view({b, c, t / factor_t, factor_t, h / factor_s, factor_s, w / factor_s, factor_s})
          .permute({0, 1, 3, 5, 7, 2, 4, 6})
          .reshape({b, c * factor, t / factor_t, h / factor_s, w / factor_s});
  return y
      .view({b, out_channels, c * factor / out_channels, t / factor_t, h / factor_s, w / factor_s})
      .mean(2);
}

absl::StatusOr<Tensor> Pass::DecoderChunk(Tensor x, bool first_chunk) {
  RL_ASSIGN_OR_RETURN(x, CausalConv(x, "decoder.conv1"));
  RL_ASSIGN_OR_RETURN(x, Middle(x, "decoder"));
  int flat = 0;
  for (int i = 0; i < c_.levels(); ++i) {
    const bool up = i != c_.levels() - 1;
    const bool temporal = up && c_.temporal_downsample[c_.levels() - 2 - i];
    if (c_.version == 21) {
      for (int j = 0; j <= c_.num_res_blocks; ++j) {
        RL_ASSIGN_OR_RETURN(x, Residual(x, absl::StrCat("decoder.upsamples.", flat++)));
      }
      if (up) {
        RL_ASSIGN_OR_RETURN(
            x, Resample(x, absl::StrCat("decoder.upsamples.", flat++), true, temporal));
      }
      continue;
    }
    const std::string level = absl::StrCat("decoder.upsamples.", i, ".upsamples.");
    Tensor main = x;
    for (int j = 0; j <= c_.num_res_blocks; ++j) {
      RL_ASSIGN_OR_RETURN(main, Residual(main, absl::StrCat(level, j)));
    }
    if (up) {
      RL_ASSIGN_OR_RETURN(
          main, Resample(main, absl::StrCat(level, c_.num_res_blocks + 1), true, temporal));
      AddDupUp(main, x, temporal ? 2 : 1, first_chunk);
    }
    x = main;
  }
  return Head(x, "decoder");
}

absl::StatusOr<Tensor> Pass::EncoderChunk(Tensor x) {
  RL_ASSIGN_OR_RETURN(x, CausalConv(x, "encoder.conv1"));
  int flat = 0;
  for (int i = 0; i < c_.levels(); ++i) {
    const bool down = i != c_.levels() - 1;
    const bool temporal = down && c_.temporal_downsample[i];
    if (c_.version == 21) {
      for (int j = 0; j < c_.num_res_blocks; ++j) {
        RL_ASSIGN_OR_RETURN(x, Residual(x, absl::StrCat("encoder.downsamples.", flat++)));
      }
      if (down) {
        RL_ASSIGN_OR_RETURN(
            x, Resample(x, absl::StrCat("encoder.downsamples.", flat++), false, temporal));
      }
      continue;
    }
    const std::string level = absl::StrCat("encoder.downsamples.", i, ".downsamples.");
    Tensor main = x;
    for (int j = 0; j < c_.num_res_blocks; ++j) {
      RL_ASSIGN_OR_RETURN(main, Residual(main, absl::StrCat(level, j)));
    }
    if (down) {
      RL_ASSIGN_OR_RETURN(main,
                          Resample(main, absl::StrCat(level, c_.num_res_blocks), false, temporal));
    }
    x = main + AvgDown(x, main.size(1), temporal ? 2 : 1, down ? 2 : 1);
  }
  RL_ASSIGN_OR_RETURN(x, Middle(x, "encoder"));
  return Head(x, "encoder");
}

// [B, C * p * p, T, h, w] -> [B, C, T, h * p, w * p] (channel order c, r (column), q (row)).
Tensor Unpatchify(const Tensor& x, int64_t p) {
  if (p == 1) return x;
  const int64_t b = x.size(0), c = x.size(1) / (p * p), t = x.size(2), h = x.size(3), w = x.size(4);
  return x.view({b, c, p, p, t, h, w})
      .permute({0, 1, 4, 5, 3, 6, 2})
      .reshape({b, c, t, h * p, w * p});
}

Tensor Patchify(const Tensor& x, int64_t p) {
  if (p == 1) return x;
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3) / p, w = x.size(4) / p;
  return x.view({b, c, t, h, p, w, p})
      .permute({0, 1, 6, 4, 2, 3, 5})
      .reshape({b, c * p * p, t, h, w});
}

template <typename F>
absl::Status Guard(F&& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("Wan VAE: ", e.what_without_backtrace()));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<WanVae>> WanVae::FromWeights(
    const WanVaeConfig& config, const std::map<std::string, at::Tensor>& weights,
    const WanVaeOptions& options) {
  std::map<std::string, Tensor> placed;
  for (const auto& [name, shape] : WanVaeWeightShapes(config)) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      return absl::InvalidArgumentError(absl::StrCat("Wan VAE: missing weight ", name));
    }
    if (it->second.sizes().vec() != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("Wan VAE: ", name, " has shape [", absl::StrJoin(it->second.sizes(), ", "),
                       "], expected [", absl::StrJoin(shape, ", "), "]"));
    }
    Tensor placed_weight = it->second.to(options.device, options.dtype).contiguous();
    if (options.UseChannelsLast() && placed_weight.dim() == 5) {
      placed_weight = placed_weight.contiguous(at::MemoryFormat::ChannelsLast3d);
    } else if (options.UseChannelsLast() && placed_weight.dim() == 4 && shape[2] > 1) {
      placed_weight = placed_weight.contiguous(at::MemoryFormat::ChannelsLast);
    }
    placed[name] = std::move(placed_weight);
  }
  return std::unique_ptr<WanVae>(new WanVae(config, options, std::move(placed)));
}

absl::StatusOr<std::unique_ptr<WanVae>> WanVae::Load(const std::vector<std::string>& paths,
                                                     const WanVaeOptions& options) {
  if (paths.empty()) return absl::InvalidArgumentError("Wan VAE: no file");
  // Opened once under the files' own names: they tell the spelling and the config, which name
  // each tensor internally.
  RL_ASSIGN_OR_RETURN(
      Checkpoint checkpoint,
      OpenCheckpoint(paths,
                     [](const std::string& raw) -> std::optional<std::string> { return raw; }));
  RL_ASSIGN_OR_RETURN(WanVaeKeyMap map, MapWanVaeKeys(KeyShapesOf(checkpoint).shapes));
  std::map<std::string, Tensor> weights;
  try {
    for (const auto& [raw, internal] : map.internal_by_raw) {
      weights[internal] = Materialize(checkpoint.tensors.at(raw), options.dtype, options.device);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("Wan VAE: ", e.what_without_backtrace()));
  }
  return FromWeights(map.config, weights, options);
}

int64_t WanVae::bytes() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : weights_) total += tensor.nbytes();
  return total;
}

absl::StatusOr<at::Tensor> WanVae::CheckedLatent(const at::Tensor& latent_in) const {
  const Tensor latent = latent_in.dim() == 4 ? latent_in.unsqueeze(0) : latent_in;
  if (latent.dim() != 5 || latent.size(1) != config_.z_dim) {
    return absl::InvalidArgumentError(absl::StrCat("latent: expected [B, ", config_.z_dim,
                                                   ", T, h, w], got [",
                                                   absl::StrJoin(latent_in.sizes(), ", "), "]"));
  }
  return latent;
}

at::Tensor WanVae::DecoderInput(const at::Tensor& latent, const RowBands& bands) const {
  Tensor x = latent.to(options_.device, options_.dtype);
  if (options_.UseChannelsLast()) x = x.contiguous(at::MemoryFormat::ChannelsLast3d);
  if (bands.split()) x = x.narrow(3, bands.begin(), bands.end() - bands.begin());
  // The post-quant conv is 1x1x1: the whole latent at once.
  return at::conv3d(x, weights_.at("conv2.weight"), weights_.at("conv2.bias"));
}

absl::Status WanVae::Run(const std::function<absl::Status()>& body) const {
  return Guard([&]() -> absl::Status {
    // cuDNN's algorithm search pays off: a decode runs the same few conv shapes hundreds of
    // times. Restored after, so the rest of the process keeps its setting.
    const bool benchmark_before = at::globalContext().benchmarkCuDNN();
    at::globalContext().setBenchmarkCuDNN(options_.cudnn_benchmark);
    absl::Cleanup restore = [benchmark_before] {
      at::globalContext().setBenchmarkCuDNN(benchmark_before);
    };
    return body();
  });
}

absl::Status WanVae::Decode(const at::Tensor& latent_in, const RowBands& bands,
                            const FrameSink& sink) const {
  RL_ASSIGN_OR_RETURN(const Tensor latent, CheckedLatent(latent_in));
  return Run([&]() -> absl::Status {
    const Tensor x = DecoderInput(latent, bands);
    Pass pass(config_, weights_, bands);
    for (int64_t t = 0; t < x.size(2); ++t) {
      RL_ASSIGN_OR_RETURN(Tensor frames, pass.DecoderChunk(x.narrow(2, t, 1), t == 0));
      frames = Unpatchify(frames, config_.patch_size).to(at::kFloat).clamp(-1.0, 1.0);
      RL_ASSIGN_OR_RETURN(frames, bands.RowsOnRoot(frames, 3));
      if (bands.rank() == 0) RL_RETURN_IF_ERROR(sink(frames));
    }
    return absl::OkStatus();
  });
}

namespace {

// diffusers' blend_v / blend_h: the first `extent` rows (columns) of `b` fade in from the last of
// `a`, in place, with weights y / extent computed in double as Python does.
void BlendInto(const Tensor& a, Tensor& b, int64_t extent, int64_t dim) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  if (extent <= 0) return;
  std::vector<int64_t> shape(b.dim(), 1);
  shape[dim] = extent;
  const Tensor weight = (at::arange(extent, at::kDouble) / static_cast<double>(extent))
                            .to(b.scalar_type())
                            .to(b.device())
                            .reshape(shape);
  Tensor head = b.narrow(dim, 0, extent);
  head.copy_(a.narrow(dim, a.size(dim) - extent, extent) * (1 - weight) + head * weight);
}

}  // namespace

absl::Status WanVae::DecodeTiled(const at::Tensor& latent_in, const WanVaeTiling& tiling,
                                 const FrameSink& sink) const {
  RL_ASSIGN_OR_RETURN(const Tensor latent, CheckedLatent(latent_in));
  const int64_t f = config_.spatial_factor(), p = config_.patch_size;
  if (tiling.size < f || tiling.size % f != 0 || tiling.stride < f || tiling.stride % f != 0 ||
      tiling.stride > tiling.size) {
    return absl::InvalidArgumentError(absl::StrCat("tiling: size ", tiling.size, " and stride ",
                                                   tiling.stride, " must be multiples of ", f,
                                                   " with 0 < stride <= size"));
  }
  return Run([&]() -> absl::Status {
    const Tensor x = DecoderInput(latent, RowBands());
    const int64_t h = x.size(3), w = x.size(4);
    const int64_t tile = tiling.size / f, step = tiling.stride / f;
    // In the decoder's output (2x2 patches for 2.2): what each tile keeps and blends.
    const int64_t keep = tiling.stride / p, blend = tiling.size / p - tiling.stride / p;
    std::vector<int64_t> row_starts, column_starts;
    for (int64_t i = 0; i < h; i += step) row_starts.push_back(i);
    for (int64_t j = 0; j < w; j += step) column_starts.push_back(j);
    // Tile by tile, each through every frame with its own caches (only one tile's caches and
    // activations are on the device at a time), its output kept on the host in float32 (the
    // blend's precision); then each chunk of frames is blended and handed on.
    const RowBands whole;
    const size_t columns = column_starts.size();
    std::vector<std::vector<Tensor>> outputs(row_starts.size() * columns);
    for (size_t r = 0; r < row_starts.size(); ++r) {
      for (size_t c = 0; c < columns; ++c) {
        const int64_t i = row_starts[r], j = column_starts[c];
        const Tensor part =
            x.narrow(3, i, std::min(tile, h - i)).narrow(4, j, std::min(tile, w - j));
        Pass pass(config_, weights_, whole);
        for (int64_t t = 0; t < x.size(2); ++t) {
          RL_ASSIGN_OR_RETURN(Tensor out, pass.DecoderChunk(part.narrow(2, t, 1), t == 0));
          outputs[r * columns + c].push_back(out.to(at::kCPU, at::kFloat).contiguous());
        }
      }
    }
    for (int64_t t = 0; t < x.size(2); ++t) {
      std::vector<Tensor> rows;
      for (size_t r = 0; r < row_starts.size(); ++r) {
        std::vector<Tensor> row;
        for (size_t c = 0; c < columns; ++c) {
          Tensor& current = outputs[r * columns + c][t];
          if (r > 0) BlendInto(outputs[(r - 1) * columns + c][t], current, blend, 3);
          if (c > 0) BlendInto(outputs[r * columns + c - 1][t], current, blend, 4);
          row.push_back(current.narrow(3, 0, std::min(keep, current.size(3)))
                            .narrow(4, 0, std::min(keep, current.size(4))));
        }
        rows.push_back(at::cat(row, 4));
      }
      Tensor frames = at::cat(rows, 3).narrow(3, 0, h * f / p).narrow(4, 0, w * f / p);
      frames = Unpatchify(frames, p).clamp(-1.0, 1.0);
      RL_RETURN_IF_ERROR(sink(frames));
    }
    return absl::OkStatus();
  });
}

WanVaeTiling WanVae::TilingWithin(int64_t free_bytes) const {
  const int64_t unit = 4 * config_.spatial_factor();
  const double per_pixel = static_cast<double>(DecodePeakBytes(1, 1));
  const auto side = static_cast<int64_t>(std::sqrt(static_cast<double>(free_bytes) / per_pixel));
  const int64_t size = std::max(unit, side / unit * unit);
  return {.size = size, .stride = size / 4 * 3};
}

int64_t WanVae::DecodePeakBytes(int64_t height, int64_t width) const {
  const int64_t per_pixel = options_.dtype == at::kFloat ? 20000 : 10000;
  return per_pixel * height * width;
}

absl::StatusOr<at::Tensor> WanVae::Decode(const at::Tensor& latent) const {
  std::vector<Tensor> chunks;
  RL_RETURN_IF_ERROR(Decode(latent, RowBands(), [&chunks](const Tensor& frames) {
    chunks.push_back(frames);
    return absl::OkStatus();
  }));
  return at::cat(chunks, 2);
}

absl::StatusOr<at::Tensor> WanVae::Encode(const at::Tensor& video_in) const {
  const Tensor video = video_in.dim() == 4 ? video_in.unsqueeze(0) : video_in;
  const int64_t f = config_.spatial_factor();
  if (video.dim() != 5 || video.size(1) != config_.image_channels || video.size(3) % f != 0 ||
      video.size(4) % f != 0 || video.size(2) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("video: expected [B, 3, T, H, W] with H and W multiples of ", f, ", got [",
                     absl::StrJoin(video_in.sizes(), ", "), "]"));
  }
  Tensor result;
  RL_RETURN_IF_ERROR(Guard([&]() -> absl::Status {
    Tensor x = Patchify(video.to(options_.device, options_.dtype), config_.patch_size);
    if (options_.UseChannelsLast()) x = x.contiguous(at::MemoryFormat::ChannelsLast3d);
    const RowBands whole;
    Pass pass(config_, weights_, whole);
    const int64_t factor = config_.temporal_factor();
    const int64_t chunks = 1 + (x.size(2) - 1) / factor;
    std::vector<Tensor> outputs;
    for (int64_t i = 0; i < chunks; ++i) {
      const Tensor chunk = i == 0 ? x.narrow(2, 0, 1) : x.narrow(2, 1 + factor * (i - 1), factor);
      RL_ASSIGN_OR_RETURN(Tensor out, pass.EncoderChunk(chunk));
      outputs.push_back(out);
    }
    const Tensor moments =
        at::conv3d(at::cat(outputs, 2), weights_.at("conv1.weight"), weights_.at("conv1.bias"));
    result = moments.narrow(1, 0, config_.z_dim).to(at::kFloat);
    return absl::OkStatus();
  }));
  return result;
}

}  // namespace raylight::models::vae
