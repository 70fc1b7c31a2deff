// Wan VAE weight names. The internal spelling is the official Wan code's, which ComfyUI's
// wan_2.1_vae.safetensors / wan2.2_vae.safetensors use (`decoder.upsamples.3.residual.2.weight`,
// `conv2.weight`); diffusers' AutoencoderKLWan spelling (`decoder.up_blocks.0.resnets.2.conv1
// .weight`, `post_quant_conv.weight`) is mapped onto it. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/vae/wan_vae_config.h"

namespace raylight::models::vae {

// Every weight `config` needs: internal name -> shape.
std::map<std::string, std::vector<int64_t>> WanVaeWeightShapes(const WanVaeConfig& config);

// Internal name -> diffusers' spelling, for every weight of `config` (tests write both).
std::map<std::string, std::string> WanVaeDiffusersNames(const WanVaeConfig& config);

struct WanVaeKeyMap {
  WanVaeConfig config;
  std::map<std::string, std::string> internal_by_raw;  // every raw key the VAE uses
};

// Reads a file's keys (either spelling; a `vae.` or `first_stage_model.` prefix is dropped) and
// shapes: the config they hold and each raw key's internal name. Keys that are not VAE weights
// are left out of the map; a missing or misshapen weight is an error naming it.
absl::StatusOr<WanVaeKeyMap> MapWanVaeKeys(
    const std::map<std::string, std::vector<int64_t>>& raw_shapes);

}  // namespace raylight::models::vae
