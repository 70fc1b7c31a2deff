// FLUX.2 as a registered family (family_registry.h): its names, detection, ModelInfo and
// conditioning check.
#include "models/flux2/flux2_family_inspect.h"

#include "absl/strings/str_cat.h"
#include "models/flux/flux_conditioning_header.h"
#include "models/flux2/flux2_keys.h"

namespace raylight::models::flux2 {

absl::Status CheckFlux2ConditioningHeader(const StHeader& header, const std::string& where,
                                          const flux::FluxConfig& config) {
  for (const StTensorInfo& tensor : header.tensors) {
    if (tensor.name != "text" && tensor.name != "guidance") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown tensor '", tensor.name,
                       "' (a FLUX.2 conditioning has text and optionally guidance)"));
    }
  }
  return flux::CheckFluxConditioningHeader(header, where, config);
}

ModelInfo Flux2ModelInfo(const flux::FluxConfig& config) {
  ModelInfo info;
  info.family = "flux2";
  info.variant = config.name;
  info.num_heads = static_cast<int>(config.num_heads);
  // ComfyUI's Flux2 latent format: 128 channels at 1/16 of the pixels (its VAE's 32 channels
  // with their 2x2 patches folded in), no scale; the transformer's patch is 1x1.
  info.video = false;
  info.merges_loras = true;
  info.computes_fp8 = true;  // flux_model.cc's linears (ModuleLinear, linear2's parts)
  info.caches_steps = true;  // MagCache with the job's own ratios (none published here)
  info.tea_caches = true;    // TeaCache on the Flux forward's measure, the job's coefficients
  info.latent_channels = config.latent_channels;
  info.vae = "kl";  // BFL's FLUX.2 ae.safetensors (AutoencoderKLFlux2: 32 channels, 2x2 patches)
  info.spatial_factor = 16;
  info.temporal_factor = 1;
  info.patch_t = 1;
  info.patch_h = info.patch_w = config.patch;
  info.joint_text_tokens = kFlux2TextTokens;
  info.guidance_distilled = config.guidance_embed;
  // ComfyUI's Flux2 model config: ModelSamplingFlux at shift 2.02.
  info.sampling = SamplingKind::kFluxShift;
  info.default_shift = 2.02;
  info.check_conditioning = [config](const StHeader& header, const std::string& where) {
    return CheckFlux2ConditioningHeader(header, where, config);
  };
  return info;
}

FamilyInspection Inspection() {
  return FamilyInspection{.name = "flux2",
                          .normalize_key = NormalizeFlux2Key,
                          .claims = LooksLikeFlux2,
                          .inspect = [](const KeyShapes& shapes) -> absl::StatusOr<ModelInfo> {
                            auto config = DetectFlux2Config(shapes);
                            if (!config.ok()) return config.status();
                            return Flux2ModelInfo(*config);
                          }};
}

}  // namespace raylight::models::flux2
