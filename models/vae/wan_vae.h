// The Wan VAE (2.1 and 2.2), encoder and decoder, as functions over named weights (internal
// names of wan_vae_keys.h), numerically the official code's, ComfyUI's and diffusers'
// AutoencoderKLWan's:
//   - decode runs one latent frame at a time (the first makes one frame, each later one
//     temporal_factor frames) with each causal convolution's last two input frames cached, so
//     memory does not grow with the frame count, and hands each chunk of frames to a sink as it
//     is made (streaming to host memory or a file);
//   - encode runs chunks of 1, 4, 4, ... frames the same way and returns the posterior's mean;
//   - over a group (RowBands::Split), each rank decodes a band of rows, exchanging one halo row
//     per 3x3 convolution with its neighbours and every row's keys and values for the middle
//     attention: the result is the single-process decode's (no blended tiles), gathered on rank 0.
// Latents are the VAE's own (ComfyUI's LATENT), not the diffusion model's normalised space;
// pixels are in [-1, 1], [B, 3, frames, height, width].
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/vae/row_bands.h"
#include "models/vae/wan_vae_config.h"

namespace raylight::models::vae {

struct WanVaeOptions {
  at::Device device = at::kCPU;
  // bf16 and fp16 run the convolutions in that dtype and the norms in float32, as diffusers
  // does; the output frames are float32 either way.
  at::ScalarType dtype = at::kFloat;
  // On CUDA, activations and convolutions in NDHWC (channels-last) layout: cuDNN's kernels read
  // it natively (NCDHW costs a layout transform around every convolution) and the fused norm
  // reads each position's channels in one stretch; 0.71x the NCDHW decode's time at 720p and
  // 20% less memory (BENCHMARKS.md). The CPU keeps NCDHW, the references' layout.
  bool channels_last = true;
  bool UseChannelsLast() const { return channels_last && device.is_cuda(); }
  // cuDNN picks each convolution's fastest algorithm by trying them (during the decode only).
  bool cudnn_benchmark = true;
};

// Spatial tiles for a decode that does not fit at once, as diffusers' AutoencoderKLWan tiled
// decode makes them: tiles `size` pixels square every `stride` pixels (both multiples of the
// spatial factor; diffusers' defaults 256 and 192), each decoded with its own causal caches, the
// overlap blended linearly (upper and left neighbours into each tile, in raster order). The seams
// are approximations of the untiled decode (RowBands is the exact way to split one). Device
// memory follows the tile, not the frame: one tile's causal caches and activations at a time
// (frame-major tiling would keep every tile's caches, which at 81 frames cost as much as the
// untiled decode); the decoded video waits on the host.
struct WanVaeTiling {
  int64_t size = 256;
  int64_t stride = 192;
};

class WanVae {
 public:
  // Frames as they are made: [B, 3, n, H, W] float32 in [-1, 1] on the VAE's device.
  using FrameSink = std::function<absl::Status(const at::Tensor& frames)>;

  // Reads safetensors files in either spelling; the config is detected from the weights.
  static absl::StatusOr<std::unique_ptr<WanVae>> Load(const std::vector<std::string>& paths,
                                                      const WanVaeOptions& options);
  // From tensors by internal name (any device and dtype; moved to the options').
  static absl::StatusOr<std::unique_ptr<WanVae>> FromWeights(
      const WanVaeConfig& config, const std::map<std::string, at::Tensor>& weights,
      const WanVaeOptions& options);

  const WanVaeConfig& config() const { return config_; }
  const WanVaeOptions& options() const { return options_; }
  int64_t bytes() const;

  // latent [B, z_dim, T, h, w] (or without B). One process when `bands` is the default; over a
  // group every rank passes the same whole latent and the sink is called on rank 0 only.
  absl::Status Decode(const at::Tensor& latent, const RowBands& bands, const FrameSink& sink) const;
  // Every frame at once: [B, 3, 1 + 4 (T - 1), 8h, 8w] (16h, 16w for 2.2), on the VAE's device.
  absl::StatusOr<at::Tensor> Decode(const at::Tensor& latent) const;
  // One process, in tiles (WanVaeTiling): each tile through every frame, its output kept on the
  // host, then the frames blended and handed to the sink (on the host) a chunk at a time.
  absl::Status DecodeTiled(const at::Tensor& latent, const WanVaeTiling& tiling,
                           const FrameSink& sink) const;
  // The device memory a one-process decode of a height x width video peaks at, estimated: the
  // measured peak per output pixel (8.5-8.9 KB in bf16 on CUDA, channels-last, Wan 2.1 and 2.2,
  // BENCHMARKS.md) rounded up to 10 KB, twice that in float32; it does not grow with frames.
  int64_t DecodePeakBytes(int64_t height, int64_t width) const;
  // diffusers' tile shape (stride 3/4 of the side) at the largest side, a multiple of four latent
  // rows, whose estimated decode fits in `free_bytes`; at least four latent rows.
  WanVaeTiling TilingWithin(int64_t free_bytes) const;
  // video [B, 3, T, H, W] in [-1, 1], H and W multiples of the spatial factor -> the latent mean
  // [B, z_dim, 1 + (T - 1) / 4, H / f, W / f]; frames past the last whole chunk of 4 are dropped,
  // as every implementation does.
  absl::StatusOr<at::Tensor> Encode(const at::Tensor& video) const;

 private:
  WanVae(WanVaeConfig config, WanVaeOptions options, std::map<std::string, at::Tensor> weights)
      : config_(std::move(config)), options_(options), weights_(std::move(weights)) {}

  // A decode's latent [B, z_dim, T, h, w] (a missing B added), or an error naming `latent`.
  absl::StatusOr<at::Tensor> CheckedLatent(const at::Tensor& latent) const;
  // What the decoder's first chunk reads from: the latent on the VAE's device and layout, this
  // rank's band of rows, through the 1x1x1 post-quant conv.
  at::Tensor DecoderInput(const at::Tensor& latent, const RowBands& bands) const;
  // `body` with c10 errors as statuses and cuDNN's algorithm search as the options say.
  absl::Status Run(const std::function<absl::Status()>& body) const;

  WanVaeConfig config_;
  WanVaeOptions options_;
  std::map<std::string, at::Tensor> weights_;
};

}  // namespace raylight::models::vae
