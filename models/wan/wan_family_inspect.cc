// Wan 2.1 / 2.2 as a registered family (family_registry.h): its names, detection and ModelInfo.
#include "models/wan/wan_family_inspect.h"

#include "models/wan/wan_inspect.h"
#include "models/wan/wan_keys.h"

namespace raylight::models::wan {

ModelInfo WanModelInfo(const WanConfig& config) {
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
  // The official sampling scripts' shift for a job that gives none.
  info.sampling = SamplingKind::kShiftedFlow;
  info.default_shift = 5.0;
  info.merges_loras = true;
  info.computes_fp8 = true;  // every block linear goes through wan_model.cc's Linear
  info.caches_steps = true;  // TeaCache and MagCache (its own run: wan_sampling.cc)
  info.check_conditioning = [config](const StHeader& header, const std::string& where) {
    return CheckWanConditioningHeader(header, where, config);
  };
  return info;
}

FamilyInspection Inspection() {
  return FamilyInspection{.name = "wan",
                          .normalize_key = NormalizeWanKey,
                          // Any of Wan's names: a damaged Wan checkpoint is Wan's to explain.
                          .claims = [](const KeyShapes& shapes) { return !shapes.shapes.empty(); },
                          .inspect = [](const KeyShapes& shapes) -> absl::StatusOr<ModelInfo> {
                            auto config = DetectWanConfig(shapes);
                            if (!config.ok()) return config.status();
                            return WanModelInfo(*config);
                          }};
}

}  // namespace raylight::models::wan
