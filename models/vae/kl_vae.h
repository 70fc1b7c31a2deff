// The image VAE (kl_vae_keys.h: Stable Diffusion's, SDXL's, Flux.1's, Chroma's and FLUX.2's
// AutoencoderKL) as a function over its named weights, numerically diffusers' AutoencoderKL
// decode and the LDM decoder BFL's and ComfyUI's code run: the post-quant 1x1 convolution where
// the file has one, conv_in, the middle resnet / single-head attention / resnet, each level's
// resnets (deepest first) with a nearest-neighbour 2x upsample and a 3x3 convolution between
// levels, then GroupNorm, SiLU and conv_out. GroupNorms run in float32 whatever the compute
// dtype (bf16's 8 bits of mantissa lose the statistics of large planes).
//
// Latents are the VAE's own (ComfyUI's LATENT: the sampler's output after the family's
// process_out), [B, C, h, w] or ComfyUI's one-frame [B, C, 1, h, w]; images come out as
// [B, 3, 8h, 8w] float32 in about [-1, 1] (not clamped: the image writers clamp).
//
// The encoder, where the file has one, is diffusers' AutoencoderKL encode and ComfyUI's VAEEncode
// (its DiagonalGaussianRegularizer without sampling): conv_in, each level's resnets with a
// stride-2 convolution after zero padding on the right and bottom between levels, the middle,
// GroupNorm, SiLU, conv_out, SD's quant_conv, and the posterior's mode (its mean).
//
// FLUX.2's VAE (latent_patch 2) takes and gives its LATENT as its pipeline and ComfyUI do: the
// 32-channel latent in 2x2 patches (128 channels at 1/16 of the pixels) normalised by the file's
// batch-norm statistics (eps 1e-4); Decode undoes both before the decoder, Encode does both after
// the encoder.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/vae/kl_vae_keys.h"

namespace raylight::models::vae {

struct KlVaeOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;  // the convolutions' dtype (bf16 / fp16 on a GPU)
};

class KlVae {
 public:
  // The decoder's weights from safetensors files in either spelling (kl_vae_keys.h).
  static absl::StatusOr<std::unique_ptr<KlVae>> Load(const std::vector<std::string>& paths,
                                                     const KlVaeOptions& options);

  absl::StatusOr<at::Tensor> Decode(const at::Tensor& latent) const;
  // Pixels [B, 3, H, W] in [-1, 1] (H and W multiples of the spatial factor) to the latent
  // [B, C, H / f, W / f] (f: the spatial factor, 8), float32; an error for a decoder-only file.
  absl::StatusOr<at::Tensor> Encode(const at::Tensor& pixels) const;

  const KlVaeConfig& config() const { return config_; }
  int64_t bytes() const;

 private:
  KlVae(KlVaeConfig config, KlVaeOptions options, std::map<std::string, at::Tensor> weights)
      : config_(std::move(config)), options_(options), weights_(std::move(weights)) {}

  at::Tensor W(const std::string& name) const { return weights_.at(name); }
  at::Tensor GroupNormSilu(const at::Tensor& x, const std::string& norm, bool silu) const;
  at::Tensor Conv(const at::Tensor& x, const std::string& conv, int64_t padding,
                  int64_t stride = 1) const;
  at::Tensor Resnet(const at::Tensor& x, const std::string& at) const;
  at::Tensor Attention(const at::Tensor& x, const std::string& at) const;
  // FLUX.2's latent standard deviation per patched channel, [1, C p^2, 1, 1] float32.
  at::Tensor LatentStd() const;
  // The middle resnet / attention / resnet of "encoder" or "decoder".
  at::Tensor Middle(const at::Tensor& x, const std::string& side) const;

  KlVaeConfig config_;
  KlVaeOptions options_;
  std::map<std::string, at::Tensor> weights_;  // by internal (LDM) name
};

}  // namespace raylight::models::vae
