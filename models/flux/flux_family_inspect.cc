// Flux.1 as a registered family (family_registry.h): its names, detection and ModelInfo.
#include "models/flux/flux_family_inspect.h"

#include "models/flux/flux_conditioning_header.h"
#include "models/flux/flux_keys.h"
#include "models/flux/flux_mag_cache.h"
#include "models/flux/flux_tea_cache.h"

namespace raylight::models::flux {

ModelInfo FluxModelInfo(const FluxConfig& config) {
  ModelInfo info;
  info.family = "flux";
  info.variant = config.name;
  info.num_heads = static_cast<int>(config.num_heads);
  info.video = false;
  info.merges_loras = true;
  info.computes_fp8 = true;  // flux_model.cc's linears (ModuleLinear, linear2's parts)
  info.caches_steps = true;  // MagCache: the authors' curve for dev, the job's ratios otherwise
  info.published_mag_cache = [config](int64_t, int64_t) { return PublishedFluxMagCache(config); };
  info.tea_caches = true;  // TeaCache4FLUX's measure; its coefficients for dev
  info.published_tea_cache = [config] { return PublishedFluxTeaCache(config); };
  info.latent_channels = config.latent_channels;
  info.spatial_factor = 8;
  info.vae = "kl";  // BFL's ae.safetensors (AutoencoderKL, 16 channels)
  info.temporal_factor = 1;
  info.patch_t = 1;
  info.patch_h = info.patch_w = config.patch;
  // Planned for a T5 prompt padded to 512 tokens, as the Flux pipelines pad it.
  info.joint_text_tokens = 512;
  info.guidance_distilled = config.guidance_embed;
  // ComfyUI's ModelSamplingFlux: shift 1.15 for dev (its default), 1.0 for schnell (its
  // sampling_settings).
  info.sampling = SamplingKind::kFluxShift;
  info.default_shift = config.guidance_embed ? 1.15 : 1.0;
  info.check_conditioning = [config](const StHeader& header, const std::string& where) {
    return CheckFluxConditioningHeader(header, where, config);
  };
  return info;
}

FamilyInspection Inspection() {
  return FamilyInspection{.name = "flux",
                          .normalize_key = NormalizeFluxKey,
                          .claims = LooksLikeFlux,
                          .inspect = [](const KeyShapes& shapes) -> absl::StatusOr<ModelInfo> {
                            auto config = DetectFluxConfig(shapes);
                            if (!config.ok()) return config.status();
                            if (auto status = CheckFluxWeights(shapes, *config); !status.ok())
                              return status;
                            return FluxModelInfo(*config);
                          }};
}

}  // namespace raylight::models::flux
