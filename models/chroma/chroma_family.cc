#include "models/chroma/chroma_family.h"

#include "absl/strings/str_cat.h"
#include "models/chroma/chroma_family_inspect.h"
#include "models/chroma/chroma_keys.h"
#include "models/core/safetensors_tensors.h"

namespace raylight::models::chroma {
namespace {

using flux::FluxConfig;
using flux::FluxInputs;

// A conditioning file as the forward's inputs on `device`: the text [1, L, 4096] and the
// guidance (0 when the file has none, as ComfyUI's Chroma and diffusers' take it).
absl::StatusOr<FluxInputs> ReadConditioning(const std::string& bytes, const std::string& field,
                                            const FluxConfig& config, at::Device device) {
  auto header = ParseSafetensors(bytes, field);
  if (!header.ok()) return header.status();
  if (auto status = CheckChromaConditioningHeader(*header, field, config); !status.ok()) {
    return status;
  }
  auto tensors = ParseTensors(bytes, field);
  if (!tensors.ok()) return tensors.status();
  FluxInputs in;
  in.context = tensors->at("text").to(at::kFloat).reshape({1, -1, config.context_dim});
  in.guidance = tensors->contains("guidance") ? tensors->at("guidance").to(at::kFloat).reshape({1})
                                              : at::zeros({1});
  for (const at::Tensor& t : {in.context, in.guidance}) {
    if (!at::isfinite(t).all().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": NaN or infinite values"));
    }
  }
  in.context = in.context.to(device);
  in.guidance = in.guidance.to(device);
  return in;
}

}  // namespace

const flux::FluxArchitecture& ChromaArchitecture() {
  static const auto* architecture = new flux::FluxArchitecture{
      .family = "chroma",
      .normalize = NormalizeChromaKey,
      .detect = [](const KeyShapes& shapes) -> absl::StatusOr<FluxConfig> {
        auto config = DetectChromaConfig(shapes);
        if (!config.ok()) return config.status();
        if (auto status = CheckChromaWeights(shapes, *config); !status.ok()) return status;
        return config;
      },
      .info = ChromaModelInfo,
      .latent_format = Flux1LatentFormat,
      .read_conditioning = ReadConditioning};
  return *architecture;
}

absl::StatusOr<flux::LoadedFlux> LoadChroma(const std::vector<std::string>& paths,
                                            const PlacementOptions& options,
                                            const WeightPlacement& placement,
                                            const std::vector<LoraFile>& loras) {
  return flux::LoadFluxArchitecture(ChromaArchitecture(), paths, options, placement, loras);
}

FamilyModels Models() { return flux::FluxArchitectureModels(ChromaArchitecture()); }

}  // namespace raylight::models::chroma
