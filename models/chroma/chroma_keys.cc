#include "models/chroma/chroma_keys.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/model_prefix.h"
#include "models/flux/flux_keys.h"

namespace raylight::models::chroma {
namespace {

using flux::FluxConfig;

std::vector<FluxConfig> Presets() {
  FluxConfig full = *flux::FluxPreset("flux1-schnell");
  full.name = "chroma";
  full.vec_dim = 0;
  full.guidance_embed = false;
  full.approximator_hidden = 5120;
  full.approximator_layers = 5;
  FluxConfig tiny = full;
  tiny.name = "tiny-chroma";
  tiny.hidden = 128;
  tiny.num_heads = 4;
  tiny.mlp_hidden = 4 * tiny.hidden;
  tiny.context_dim = 48;
  tiny.axes_dim = {4, 14, 14};
  tiny.approximator_hidden = 64;
  return {full, tiny};
}

}  // namespace

absl::StatusOr<FluxConfig> ChromaPreset(const std::string& name) {
  for (const FluxConfig& c : Presets()) {
    if (c.name == name) return c;
  }
  return absl::NotFoundError(absl::StrCat("no Chroma preset '", name,
                                          "'; known: ", absl::StrJoin(ChromaPresetNames(), ", ")));
}

std::vector<std::string> ChromaPresetNames() {
  std::vector<std::string> names;
  for (const FluxConfig& c : Presets()) names.push_back(c.name);
  return names;
}

std::optional<std::string> NormalizeChromaKey(const std::string& raw) {
  const std::string key = StripModelPrefix(raw);
  const std::string approximator = "distilled_guidance_layer.";  // diffusers' and BFL's
  if (!absl::StartsWith(key, approximator)) return flux::NormalizeFluxKey(raw);
  std::string rest = key.substr(approximator.size());
  // diffusers' PixArtAlphaTextProjection layers and nn.RMSNorm weights; BFL's names as they are.
  for (const auto& [from, to] :
       {std::pair{".linear_1.", ".in_layer."}, std::pair{".linear_2.", ".out_layer."}}) {
    if (const size_t at = rest.find(from);
        absl::StartsWith(rest, "layers.") && at != std::string::npos) {
      rest = rest.substr(0, at) + to + rest.substr(at + std::string(from).size());
    }
  }
  if (absl::StartsWith(rest, "norms.") && absl::EndsWith(rest, ".weight")) {
    rest = rest.substr(0, rest.size() - std::string("weight").size()) + "scale";
  }
  return approximator + rest;
}

bool LooksLikeChroma(const KeyShapes& c) {
  return c.shapes.contains("distilled_guidance_layer.in_proj.weight") &&
         c.shapes.contains("img_in.weight") && c.shapes.contains("txt_in.weight");
}

absl::StatusOr<FluxConfig> DetectChromaConfig(const KeyShapes& c) {
  FluxConfig config = *ChromaPreset("chroma");
  auto approximator = c.shapes.find("distilled_guidance_layer.in_proj.weight");
  if (approximator == c.shapes.end() || approximator->second.size() != 2) {
    return absl::InvalidArgumentError(
        "chroma checkpoint: 'distilled_guidance_layer.in_proj.weight' is missing or not of "
        "rank 2");
  }
  config.approximator_hidden = approximator->second[0];
  config.approximator_layers = flux::BlockCount(c, "distilled_guidance_layer.norms.");
  if (auto status = flux::DetectSizes(c, "chroma", config); !status.ok()) return status;
  flux::NamePreset(config, Presets());
  if (auto status = config.Validate(); !status.ok()) return status;
  if (3 * config.depth_single + 12 * config.depth + 2 > config.modulation_rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("chroma checkpoint: ", config.depth, " double and ", config.depth_single,
                     " single blocks need more than ", config.modulation_rows, " modulation rows"));
  }
  return config;
}

absl::Status CheckChromaWeights(const KeyShapes& c, const FluxConfig& config) {
  return CheckWeightShapes("Chroma", config.name,
                           flux::FluxWeightShapes(config, flux::SpellingOf(c)), c.shapes,
                           c.unknown_keys);
}

}  // namespace raylight::models::chroma
