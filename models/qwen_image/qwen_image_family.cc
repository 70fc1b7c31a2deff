#include "models/qwen_image/qwen_image_family.h"

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "models/qwen_image/qwen_image_family_inspect.h"
#include "models/qwen_image/qwen_image_keys.h"

namespace raylight::models::qwen_image {
namespace {

using flux::FluxConfig;
using flux::FluxInputs;

// A conditioning file's text [1, L, context_dim] fp32 on `device` (the header checked first).
absl::StatusOr<FluxInputs> ReadConditioning(const std::string& bytes, const std::string& field,
                                            const FluxConfig& config, at::Device device) {
  auto header = ParseSafetensors(bytes, field);
  if (!header.ok()) return header.status();
  if (auto status = CheckQwenImageConditioningHeader(*header, field, config); !status.ok()) {
    return status;
  }
  auto tensors = ParseTensors(bytes, field);
  if (!tensors.ok()) return tensors.status();
  FluxInputs in;
  in.context = tensors->at("text").to(at::kFloat).reshape({1, -1, config.context_dim});
  // Qwen-Image-Edit's references: LATENTs [1, 16, h, w] into the model's space, as ComfyUI's
  // extra_conds takes them there.
  for (int i = 0; tensors->contains(absl::StrCat("reference_latent_", i)); ++i) {
    const at::Tensor& reference = tensors->at(absl::StrCat("reference_latent_", i));
    const auto sizes = reference.sizes();
    in.references.push_back(ProcessIn(
        Wan21LatentFormat(),
        reference.to(at::kFloat)
            .reshape({1, config.latent_channels, sizes[sizes.size() - 2], sizes.back()})));
  }
  for (const at::Tensor& t : in.references) {
    if (!at::isfinite(t).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": NaN or infinite values"));
    }
  }
  if (!at::isfinite(in.context).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": 'text' has NaN or infinite values"));
  }
  in.context = in.context.to(device);
  for (at::Tensor& t : in.references) t = t.to(device);
  return in;
}

}  // namespace

const flux::FluxArchitecture& QwenImageArchitecture() {
  static const auto* architecture = new flux::FluxArchitecture{
      .family = "qwen_image",
      .normalize = NormalizeQwenImageKey,
      .detect = [](const KeyShapes& shapes) -> absl::StatusOr<FluxConfig> {
        auto config = DetectQwenImageConfig(shapes);
        if (!config.ok()) return config.status();
        if (auto status = CheckQwenImageWeights(shapes, *config); !status.ok()) return status;
        return config;
      },
      .info = QwenImageModelInfo,
      .latent_format = Wan21LatentFormat,
      .read_conditioning = ReadConditioning,
      .frame_axis = true};
  return *architecture;
}

absl::StatusOr<flux::LoadedFlux> LoadQwenImage(const std::vector<std::string>& paths,
                                               const PlacementOptions& options,
                                               const WeightPlacement& placement,
                                               const std::vector<LoraFile>& loras) {
  return flux::LoadFluxArchitecture(QwenImageArchitecture(), paths, options, placement, loras);
}

FamilyModels Models() { return flux::FluxArchitectureModels(QwenImageArchitecture()); }

}  // namespace raylight::models::qwen_image
