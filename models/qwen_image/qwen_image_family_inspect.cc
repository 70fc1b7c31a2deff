// Qwen-Image as a registered family (family_registry.h): its names, detection, ModelInfo and
// conditioning check.
#include "models/qwen_image/qwen_image_family_inspect.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/flux/flux_conditioning_header.h"
#include "models/qwen_image/qwen_image_keys.h"
#include "models/qwen_image/qwen_image_mag_cache.h"

namespace raylight::models::qwen_image {

absl::Status CheckQwenImageConditioningHeader(const StHeader& header, const std::string& where,
                                              const flux::FluxConfig& config) {
  int references = 0;
  for (const StTensorInfo& tensor : header.tensors) {
    const bool reference = tensor.name.rfind("reference_latent_", 0) == 0;
    references += reference ? 1 : 0;
    if (tensor.name != "text" && !reference) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown tensor '", tensor.name,
                       "' (a Qwen-Image conditioning has 'text' and 'reference_latent_<i>')"));
    }
    if (tensor.dtype != StDtype::kF32 && tensor.dtype != StDtype::kF16 &&
        tensor.dtype != StDtype::kBF16 && tensor.dtype != StDtype::kF64) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": '", tensor.name, "' is ",
                                                     StDtypeName(tensor.dtype), ", not a float"));
    }
  }
  const StTensorInfo* text = header.Find("text");
  if (text == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, ": no 'text' tensor"));
  std::vector<int64_t> shape = text->shape;
  if (shape.size() == 3 && shape[0] == 1) shape.erase(shape.begin());
  if (shape.size() != 2 || shape[1] != config.context_dim || shape[0] < 1 ||
      shape[0] > flux::FluxConfig::kMaxTextTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": 'text' has shape [", absl::StrJoin(text->shape, ", "), "]; ", config.name,
        " takes [1..", flux::FluxConfig::kMaxTextTokens, ", ", config.context_dim, "]"));
  }
  if (references > flux::kMaxFluxReferences) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", references, " reference latents; at most ", flux::kMaxFluxReferences));
  }
  for (int i = 0; i < references; ++i) {
    const std::string name = absl::StrCat("reference_latent_", i);
    const StTensorInfo* reference = header.Find(name);
    if (reference == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": reference latents are numbered from 0 with no gap; '", name, "' is missing"));
    }
    // [C, h, w] after dropping a batch of 1 and a frame axis of 1.
    std::vector<int64_t> sides = reference->shape;
    if (sides.size() == 5 && sides[0] == 1 && sides[2] == 1) sides = {sides[1], sides[3], sides[4]};
    if (sides.size() == 4 && sides[0] == 1) sides.erase(sides.begin());
    if (sides.size() == 4 && sides[1] == 1) sides.erase(sides.begin() + 1);
    if (sides.size() != 3 || sides[0] != config.latent_channels || sides[1] < 1 || sides[2] < 1 ||
        sides[1] > 1024 || sides[2] > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", name, "' has shape [", absl::StrJoin(reference->shape, ", "),
                       "]; ", config.name, " takes [", config.latent_channels,
                       ", h, w] (a LATENT of one frame, sides up to 1024)"));
    }
  }
  return absl::OkStatus();
}

ModelInfo QwenImageModelInfo(const flux::FluxConfig& config) {
  ModelInfo info;
  info.family = "qwen_image";
  info.variant = config.name;
  info.num_heads = static_cast<int>(config.num_heads);
  // ComfyUI's Wan21 latent format: a LATENT [B, 16, 1, H, W] of one frame.
  info.video = true;
  info.max_frames = 1;
  info.latent_channels = config.latent_channels;
  info.spatial_factor = 8;
  info.temporal_factor = 4;
  info.patch_t = 1;
  info.patch_h = info.patch_w = config.patch;
  // Planned for a long prompt's hidden states (its template dropped, most prompts are shorter).
  info.joint_text_tokens = 256;
  // ComfyUI runs it with ModelSamplingFlux (model type FLUX), shift 1.15.
  info.sampling = SamplingKind::kFluxShift;
  info.default_shift = 1.15;
  // Its LoRAs name diffusers' modules (PEFT's or kohya's spelling of them), which its checkpoints
  // use too: each maps onto one weight.
  info.merges_loras = true;
  info.computes_fp8 = true;  // flux_model.cc's linears (ModuleLinear, linear2's parts)
  // Its VAE is Wan 2.1's architecture (ComfyUI's qwen_image_vae.safetensors, diffusers'
  // AutoencoderKLQwenImage), its LATENT Wan 2.1's format: the Wan VAE decodes it.
  info.vae = "wan2.1";
  // MagCache: the authors' Qwen-Image calibration (the real size), else the job's ratios.
  info.caches_steps = true;
  info.tea_caches = true;  // TeaCache on the Flux forward's measure, the job's coefficients
  info.published_mag_cache = [config](int64_t, int64_t) {
    return PublishedQwenImageMagCache(config);
  };
  info.check_conditioning = [config](const StHeader& header, const std::string& where) {
    return CheckQwenImageConditioningHeader(header, where, config);
  };
  return info;
}

FamilyInspection Inspection() {
  return FamilyInspection{.name = "qwen_image",
                          .normalize_key = NormalizeQwenImageKey,
                          .claims = LooksLikeQwenImage,
                          .inspect = [](const KeyShapes& shapes) -> absl::StatusOr<ModelInfo> {
                            auto config = DetectQwenImageConfig(shapes);
                            if (!config.ok()) return config.status();
                            if (auto status = CheckQwenImageWeights(shapes, *config); !status.ok())
                              return status;
                            return QwenImageModelInfo(*config);
                          }};
}

}  // namespace raylight::models::qwen_image
