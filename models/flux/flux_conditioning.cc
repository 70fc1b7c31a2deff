#include "models/flux/flux_conditioning.h"

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "models/flux/flux_conditioning_header.h"

namespace raylight::models::flux {

absl::StatusOr<FluxConditioning> ParseFluxConditioning(absl::string_view bytes,
                                                       const std::string& source,
                                                       const FluxConfig& config) {
  const std::string where = absl::StrCat("conditioning ", source);
  if (auto status = CheckFluxConditioningBytes(bytes, source, config); !status.ok()) return status;
  auto tensors = ParseTensors(bytes, source);
  if (!tensors.ok()) return tensors.status();
  for (const auto& [name, tensor] : *tensors) {
    if (!at::isfinite(tensor.to(at::kFloat)).all().item<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", name, "' holds NaN or infinity"));
    }
  }
  FluxConditioning out;
  out.text = (*tensors)["text"].to(at::kFloat).reshape({1, -1, config.context_dim}).contiguous();
  out.pooled = tensors->contains("pooled")
                   ? (*tensors)["pooled"].to(at::kFloat).reshape({1, config.vec_dim}).contiguous()
                   : at::zeros({1, config.vec_dim});
  out.guidance = tensors->contains("guidance")
                     ? (*tensors)["guidance"].to(at::kDouble).item<double>()
                     : kDefaultFluxGuidance;
  for (int i = 0; tensors->contains(absl::StrCat("reference_latent_", i)); ++i) {
    const at::Tensor& ref = (*tensors)[absl::StrCat("reference_latent_", i)];
    out.reference_latents.push_back(
        ref.to(at::kFloat)
            .reshape({1, config.latent_channels, ref.size(-2), ref.size(-1)})
            .contiguous());
  }
  return out;
}

absl::Status WriteFluxConditioning(const std::string& path, const FluxConditioning& conditioning) {
  NamedTensors tensors = {{"text", conditioning.text},
                          {"pooled", conditioning.pooled},
                          {"guidance", at::full({1}, conditioning.guidance)}};
  for (size_t i = 0; i < conditioning.reference_latents.size(); ++i) {
    tensors.emplace_back(absl::StrCat("reference_latent_", i), conditioning.reference_latents[i]);
  }
  return WriteTensors(path, tensors);
}

}  // namespace raylight::models::flux
