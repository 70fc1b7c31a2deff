#include "models/flux/flux_conditioning_header.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raylight::models::flux {
namespace {

bool IsFloat(StDtype dtype) {
  return dtype == StDtype::kF64 || dtype == StDtype::kF32 || dtype == StDtype::kF16 ||
         dtype == StDtype::kBF16;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::Status CheckFluxConditioningHeader(const StHeader& header, const std::string& where,
                                         const FluxConfig& config) {
  std::map<std::string, const StTensorInfo*> tensors;
  int references = 0;
  for (const StTensorInfo& info : header.tensors) {
    const bool reference = info.name.rfind("reference_latent_", 0) == 0;
    references += reference ? 1 : 0;
    if (info.name != "text" && info.name != "pooled" && info.name != "guidance" && !reference) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown tensor '", info.name,
                       "' (a Flux conditioning has text, pooled, guidance, reference_latent_<i>)"));
    }
    if (!IsFloat(info.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", info.name, "' is ", StDtypeName(info.dtype), ", not a float"));
    }
    tensors[info.name] = &info;
  }
  if (!tensors.contains("text")) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": no 'text' tensor"));
  }
  std::vector<int64_t> text = tensors["text"]->shape;
  if (text.size() == 3 && text[0] == 1) text.erase(text.begin());
  if (text.size() != 2 || text[1] != config.context_dim || text[0] < 1 ||
      text[0] > FluxConfig::kMaxTextTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": 'text' has shape ", ShapeText(tensors["text"]->shape), "; ", config.name,
        " takes [1..", FluxConfig::kMaxTextTokens, ", ", config.context_dim, "]"));
  }
  if (tensors.contains("pooled")) {
    std::vector<int64_t> pooled = tensors["pooled"]->shape;
    if (pooled.size() == 2 && pooled[0] == 1) pooled.erase(pooled.begin());
    if (pooled.size() != 1 || pooled[0] != config.vec_dim) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": 'pooled' has shape ",
                                                     ShapeText(tensors["pooled"]->shape), "; ",
                                                     config.name, " takes [", config.vec_dim, "]"));
    }
  }
  if (references > kMaxFluxReferences) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", references, " reference latents; at most ", kMaxFluxReferences));
  }
  for (int i = 0; i < references; ++i) {
    const std::string name = absl::StrCat("reference_latent_", i);
    if (!tensors.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": reference latents are numbered from 0 with no gap; '", name, "' is missing"));
    }
    std::vector<int64_t> shape = tensors[name]->shape;
    if (shape.size() == 4 && shape[0] == 1) shape.erase(shape.begin());
    if (shape.size() != 3 || shape[0] != config.latent_channels || shape[1] < 1 || shape[2] < 1 ||
        shape[1] > 1024 || shape[2] > 1024) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": '", name, "' has shape ", ShapeText(tensors[name]->shape), "; ", config.name,
          " takes [", config.latent_channels, ", h, w] (a LATENT, sides up to 1024)"));
    }
  }
  if (tensors.contains("guidance")) {
    const std::vector<int64_t>& guidance = tensors["guidance"]->shape;
    if (!(guidance.empty() || (guidance.size() == 1 && guidance[0] == 1))) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": 'guidance' has shape ", ShapeText(guidance), "; it is one number ([] or [1])"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFluxConditioningBytes(absl::string_view bytes, const std::string& source,
                                        const FluxConfig& config) {
  auto header = ParseSafetensors(bytes, source);
  if (!header.ok()) return header.status();
  return CheckFluxConditioningHeader(*header, absl::StrCat("conditioning ", source), config);
}

}  // namespace raylight::models::flux
