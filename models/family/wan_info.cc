#include "models/family/wan_info.h"

namespace raylight::models {

ModelInfo WanModelInfo(const wan::WanConfig& config) {
  ModelInfo info;
  info.family = "wan";
  info.variant = config.name;
  info.num_heads = static_cast<int>(config.num_heads);
  info.video = true;
  info.latent_channels = config.out_channels;
  info.spatial_factor = config.vae_spatial();
  info.temporal_factor = 4;
  info.patch_t = config.patch_t;
  info.patch_h = config.patch_h;
  info.patch_w = config.patch_w;
  return info;
}

}  // namespace raylight::models
