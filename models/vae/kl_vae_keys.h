// The image VAE of Stable Diffusion, SDXL, Flux.1, Chroma and FLUX.2 (diffusers' AutoencoderKL and
// AutoencoderKLFlux2; BFL's and ComfyUI's `ae.safetensors`): its decoder's and encoder's weight
// names in the two spellings, mapped to one internal spelling (the original LDM one, which BFL's
// and ComfyUI's files use), and the VAE's shape read off them. Torch-free (the head can check a VAE
// file from its header).
//
//   LDM / BFL / ComfyUI:  decoder.mid.block_1.norm1.weight, decoder.mid.attn_1.q.weight (1x1
//                         conv), decoder.up.3.block.0.nin_shortcut.weight, decoder.norm_out...,
//                         post_quant_conv.weight (SD's; Flux's VAE has none); any prefix
//                         (ComfyUI's `first_stage_model.`, `vae.`)
//   diffusers:            decoder.mid_block.resnets.0..., decoder.mid_block.attentions.0.to_q
//                         (linear), decoder.up_blocks.0.resnets.0.conv_shortcut (up_blocks.0 is
//                         LDM's deepest level, up.N-1), decoder.conv_norm_out...; the
//                         encoder's down_blocks.N (LDM's down.N) with downsamplers.0.conv
//                         (LDM's down.N.downsample.conv), quant_conv (SD's)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models::vae {

struct KlVaeConfig {
  int64_t latent_channels = 16;  // Flux's and Chroma's 16; SD's and SDXL's 4
  // Channels of each level, shallowest first (LDM's ch * ch_mult): Flux's 128, 256, 512, 512.
  std::vector<int64_t> level_channels;
  int64_t blocks_per_level = 3;  // LDM's num_res_blocks + 1 in the decoder
  bool post_quant_conv = false;  // and quant_conv after the encoder
  bool encoder = false;          // the file has the encoder (decoder-only files decode)
  // FLUX.2's VAE (diffusers' AutoencoderKLFlux2, BFL's with its `bn`): 2, its LATENT being the
  // latent in 2x2 patches normalised by the batch-norm statistics `bn.running_mean` / `_var` of
  // those channels; 1 for every other AutoencoderKL.
  int64_t latent_patch = 1;
  int64_t spatial_factor() const { return int64_t{1} << (level_channels.size() - 1); }
  // The LATENT's channels and pixels per LATENT cell (what jobs and .latent files hold).
  int64_t model_latent_channels() const { return latent_channels * latent_patch * latent_patch; }
  int64_t model_spatial_factor() const { return spatial_factor() * latent_patch; }
};

struct KlVaeKeyMap {
  KlVaeConfig config;
  std::map<std::string, std::string> internal_by_raw;  // the decoder's and encoder's weights
};

// The decoder's and (where the file has one) the encoder's weights of a file (raw names and
// shapes): their internal names and the config they give. A file without a whole decoder, or
// with part of an encoder, is an error naming what is missing.
absl::StatusOr<KlVaeKeyMap> MapKlVaeKeys(const std::map<std::string, std::vector<int64_t>>& shapes);

}  // namespace raylight::models::vae
