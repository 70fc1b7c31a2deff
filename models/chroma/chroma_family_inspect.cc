// Chroma as a registered family (family_registry.h): its names, detection, ModelInfo and
// conditioning check.
#include "models/chroma/chroma_family_inspect.h"

#include "absl/strings/str_cat.h"
#include "models/chroma/chroma_keys.h"
#include "models/flux/flux_conditioning_header.h"

namespace raylight::models::chroma {

absl::Status CheckChromaConditioningHeader(const StHeader& header, const std::string& where,
                                           const flux::FluxConfig& config) {
  for (const StTensorInfo& tensor : header.tensors) {
    if (tensor.name != "text" && tensor.name != "guidance") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown tensor '", tensor.name,
                       "' (a Chroma conditioning has text and optionally guidance)"));
    }
  }
  return flux::CheckFluxConditioningHeader(header, where, config);
}

ModelInfo ChromaModelInfo(const flux::FluxConfig& config) {
  ModelInfo info;
  info.family = "chroma";
  info.variant = config.name;
  info.num_heads = static_cast<int>(config.num_heads);
  info.video = false;
  info.merges_loras = true;
  info.computes_fp8 = true;  // flux_model.cc's linears (ModuleLinear, linear2's parts)
  info.caches_steps = true;  // MagCache with the job's own ratios (none published here)
  info.tea_caches = true;    // TeaCache on the Flux forward's measure, the job's coefficients
  info.latent_channels = config.latent_channels;
  info.spatial_factor = 8;
  info.vae = "kl";  // Flux.1's ae.safetensors
  info.temporal_factor = 1;
  info.patch_t = 1;
  info.patch_h = info.patch_w = config.patch;
  info.joint_text_tokens = 512;  // a long T5 prompt (ComfyUI does not pad Chroma's)
  // ComfyUI runs it as Flux (ModelSamplingFlux, shift 1.15), with real CFG: not distilled.
  info.sampling = SamplingKind::kFluxShift;
  info.default_shift = 1.15;
  info.check_conditioning = [config](const StHeader& header, const std::string& where) {
    return CheckChromaConditioningHeader(header, where, config);
  };
  return info;
}

FamilyInspection Inspection() {
  return FamilyInspection{.name = "chroma",
                          .normalize_key = NormalizeChromaKey,
                          .claims = LooksLikeChroma,
                          .inspect = [](const KeyShapes& shapes) -> absl::StatusOr<ModelInfo> {
                            auto config = DetectChromaConfig(shapes);
                            if (!config.ok()) return config.status();
                            if (auto status = CheckChromaWeights(shapes, *config); !status.ok())
                              return status;
                            return ChromaModelInfo(*config);
                          }};
}

}  // namespace raylight::models::chroma
