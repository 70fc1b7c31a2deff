#include "models/flux2/flux2_family.h"

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "models/flux/flux_conditioning_header.h"
#include "models/flux2/flux2_family_inspect.h"
#include "models/flux2/flux2_keys.h"

namespace raylight::models::flux2 {
namespace {

using flux::FluxConfig;
using flux::FluxInputs;

// A conditioning file as the forward's inputs on `device`: the text padded in front with zero
// rows to 512 tokens, as ComfyUI's Flux2 model pads it (longer texts as they are), and the
// guidance (3.5 when the file has none, ComfyUI's default).
absl::StatusOr<FluxInputs> ReadConditioning(const std::string& bytes, const std::string& field,
                                            const FluxConfig& config, at::Device device) {
  auto header = ParseSafetensors(bytes, field);
  if (!header.ok()) return header.status();
  if (auto status = CheckFlux2ConditioningHeader(*header, field, config); !status.ok()) {
    return status;
  }
  auto tensors = ParseTensors(bytes, field);
  if (!tensors.ok()) return tensors.status();
  at::Tensor text = tensors->at("text").to(at::kFloat).reshape({1, -1, config.context_dim});
  const at::Tensor guidance =
      tensors->contains("guidance")
          ? tensors->at("guidance").to(at::kFloat).reshape({1})
          : at::full({1}, flux::kDefaultFluxGuidance, at::TensorOptions().dtype(at::kFloat));
  for (const at::Tensor& t : {text, guidance}) {
    if (!at::isfinite(t).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": NaN or infinite values"));
    }
  }
  if (text.size(1) < kFlux2TextTokens) {
    text = at::cat({at::zeros({1, kFlux2TextTokens - text.size(1), config.context_dim}), text}, 1);
  }
  FluxInputs in;
  in.context = text.to(device);
  in.guidance = guidance.to(device);
  return in;
}

}  // namespace

const flux::FluxArchitecture& Flux2Architecture() {
  static const auto* architecture =
      new flux::FluxArchitecture{.family = "flux2",
                                 .normalize = NormalizeFlux2Key,
                                 .detect = DetectFlux2Config,
                                 .info = Flux2ModelInfo,
                                 .latent_format = Flux2LatentFormat,
                                 .read_conditioning = ReadConditioning};
  return *architecture;
}

absl::StatusOr<flux::LoadedFlux> LoadFlux2(const std::vector<std::string>& paths,
                                           const PlacementOptions& options,
                                           const WeightPlacement& placement,
                                           const std::vector<LoraFile>& loras) {
  return flux::LoadFluxArchitecture(Flux2Architecture(), paths, options, placement, loras);
}

FamilyModels Models() { return flux::FluxArchitectureModels(Flux2Architecture()); }

}  // namespace raylight::models::flux2
