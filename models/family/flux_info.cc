#include "models/family/flux_info.h"

namespace raylight::models {

ModelInfo FluxModelInfo(const flux::FluxConfig& config) {
  ModelInfo info;
  info.family = "flux";
  info.variant = config.name;
  info.num_heads = static_cast<int>(config.num_heads);
  info.video = false;
  info.latent_channels = config.latent_channels;
  info.spatial_factor = 8;
  info.temporal_factor = 1;
  info.patch_t = 1;
  info.patch_h = info.patch_w = config.patch;
  // Planned for a T5 prompt padded to 512 tokens, as the Flux pipelines pad it.
  info.joint_text_tokens = 512;
  info.guidance_distilled = config.guidance_embed;
  return info;
}

}  // namespace raylight::models
