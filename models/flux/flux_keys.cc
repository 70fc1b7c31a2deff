#include "models/flux/flux_keys.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/model_prefix.h"
#include "models/core/weight_shapes.h"

namespace raylight::models::flux {
namespace {

using Renames = KeyRenames;

// diffusers -> internal, outside the blocks.
const Renames& GlobalRenames() {
  static const auto* renames = new Renames{
      {"x_embedder.", "img_in."},
      {"context_embedder.", "txt_in."},
      {"time_text_embed.timestep_embedder.linear_1.", "time_in.in_layer."},
      {"time_text_embed.timestep_embedder.linear_2.", "time_in.out_layer."},
      {"time_text_embed.guidance_embedder.linear_1.", "guidance_in.in_layer."},
      {"time_text_embed.guidance_embedder.linear_2.", "guidance_in.out_layer."},
      {"time_text_embed.text_embedder.linear_1.", "vector_in.in_layer."},
      {"time_text_embed.text_embedder.linear_2.", "vector_in.out_layer."},
      {"norm_out.linear.", "final_layer.scale_shift."},
      {"proj_out.", "final_layer.linear."},
  };
  return *renames;
}

// diffusers -> internal, inside a double-stream block (the rest of the name after "N.").
const Renames& DoubleRenames() {
  static const auto* renames = new Renames{
      {"norm1.linear.", "img_mod.lin."},
      {"norm1_context.linear.", "txt_mod.lin."},
      {"attn.to_q.", "img_attn.qkv.q."},
      {"attn.to_k.", "img_attn.qkv.k."},
      {"attn.to_v.", "img_attn.qkv.v."},
      {"attn.norm_q.weight", "img_attn.norm.query_norm.scale"},
      {"attn.norm_k.weight", "img_attn.norm.key_norm.scale"},
      {"attn.to_out.0.", "img_attn.proj."},
      {"attn.add_q_proj.", "txt_attn.qkv.q."},
      {"attn.add_k_proj.", "txt_attn.qkv.k."},
      {"attn.add_v_proj.", "txt_attn.qkv.v."},
      {"attn.norm_added_q.weight", "txt_attn.norm.query_norm.scale"},
      {"attn.norm_added_k.weight", "txt_attn.norm.key_norm.scale"},
      {"attn.to_add_out.", "txt_attn.proj."},
      {"ff.net.0.proj.", "img_mlp.0."},
      {"ff.net.2.", "img_mlp.2."},
      {"ff_context.net.0.proj.", "txt_mlp.0."},
      {"ff_context.net.2.", "txt_mlp.2."},
  };
  return *renames;
}

const Renames& SingleRenames() {
  static const auto* renames = new Renames{
      {"norm.linear.", "modulation.lin."},
      {"attn.to_q.", "linear1.q."},
      {"attn.to_k.", "linear1.k."},
      {"attn.to_v.", "linear1.v."},
      {"proj_mlp.", "linear1.mlp."},
      {"attn.norm_q.weight", "norm.query_norm.scale"},
      {"attn.norm_k.weight", "norm.key_norm.scale"},
      {"proj_out.", "linear2."},
  };
  return *renames;
}

// "<prefix><n>.<rest>" -> (n, rest).
bool SplitBlock(const std::string& key, const std::string& prefix, int* index, std::string* rest) {
  if (!absl::StartsWith(key, prefix)) return false;
  const size_t dot = key.find('.', prefix.size());
  if (dot == std::string::npos) return false;
  if (!absl::SimpleAtoi(key.substr(prefix.size(), dot - prefix.size()), index) || *index < 0) {
    return false;
  }
  *rest = key.substr(dot + 1);
  return true;
}

void Linear(WeightShapes& shapes, const std::string& name, int64_t in, int64_t out,
            bool bias = true) {
  shapes[name + ".weight"] = {out, in};
  if (bias) shapes[name + ".bias"] = {out};
}

// A projection BFL fuses: one matrix of the parts' widths stacked, or the parts on their own.
void Fused(WeightShapes& shapes, const std::string& name, int64_t in,
           const std::vector<std::pair<std::string, int64_t>>& parts, FluxSpelling spelling,
           bool bias) {
  if (spelling == FluxSpelling::kFused) {
    int64_t out = 0;
    for (const auto& part : parts) out += part.second;
    Linear(shapes, name, in, out, bias);
    return;
  }
  for (const auto& [part, out] : parts) Linear(shapes, name + "." + part, in, out, bias);
}

const std::vector<int64_t>* ShapeOf(const FluxKeyShapes& c, const std::string& name) {
  auto it = c.shapes.find(name);
  return it == c.shapes.end() ? nullptr : &it->second;
}

}  // namespace

std::optional<std::string> RenameByPrefix(const std::string& key, const KeyRenames& renames) {
  for (const auto& [from, to] : renames) {
    if (absl::StartsWith(key, from)) return to + key.substr(from.size());
  }
  return std::nullopt;
}

std::optional<std::string> RenameBlockKey(const std::string& key, const std::string& prefix,
                                          const std::string& to, const KeyRenames& renames) {
  int index = 0;
  std::string rest;
  if (!SplitBlock(key, prefix, &index, &rest)) return std::nullopt;
  auto renamed = RenameByPrefix(rest, renames);
  if (!renamed) return std::nullopt;
  return absl::StrCat(to, index, ".", *renamed);
}

int64_t BlockCount(const KeyShapes& c, const std::string& prefix) {
  int64_t count = 0;
  for (const auto& [name, shape] : c.shapes) {
    int index = 0;
    std::string rest;
    if (SplitBlock(name, prefix, &index, &rest)) count = std::max<int64_t>(count, index + 1);
  }
  return count;
}

absl::Status DetectSizes(const KeyShapes& c, const std::string& family, FluxConfig& config) {
  auto need = [&](const std::string& name,
                  size_t rank) -> absl::StatusOr<const std::vector<int64_t>*> {
    const std::vector<int64_t>* shape = ShapeOf(c, name);
    if (shape == nullptr || shape->size() != rank) {
      return absl::InvalidArgumentError(
          absl::StrCat(family, " checkpoint: '", name, "' is missing or not of rank ", rank));
    }
    return shape;
  };
  auto img_in = need("img_in.weight", 2);
  if (!img_in.ok()) return img_in.status();
  auto txt_in = need("txt_in.weight", 2);
  if (!txt_in.ok()) return txt_in.status();
  config.hidden = (**img_in)[0];
  const int64_t in_channels = (**img_in)[1];
  if (in_channels % (config.patch * config.patch) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(family, " checkpoint: img_in takes ",
                                                   in_channels, " values per token, not a ",
                                                   config.patch, "x", config.patch, " patch"));
  }
  config.latent_channels = in_channels / (config.patch * config.patch);
  config.context_dim = (**txt_in)[1];
  config.depth = BlockCount(c, "double_blocks.");
  config.depth_single = BlockCount(c, "single_blocks.");
  auto head = need(config.depth > 0 ? "double_blocks.0.img_attn.norm.query_norm.scale"
                                    : "single_blocks.0.norm.query_norm.scale",
                   1);
  if (!head.ok()) return head.status();
  const int64_t head_dim = (**head)[0];
  if (head_dim <= 0 || config.hidden % head_dim != 0) {
    return absl::InvalidArgumentError(absl::StrCat(family, " checkpoint: query norm width ",
                                                   head_dim, " does not divide ", config.hidden));
  }
  config.num_heads = config.hidden / head_dim;
  auto mlp = need(
      config.depth > 0 ? "double_blocks.0.img_mlp.0.weight" : "single_blocks.0.linear2.weight", 2);
  if (!mlp.ok()) return mlp.status();
  config.mlp_hidden =
      config.depth > 0 ? (**mlp)[0] / (config.swiglu ? 2 : 1) : (**mlp)[1] - config.hidden;
  auto axes = FluxAxesFor(head_dim);
  if (!axes.ok()) return axes.status();
  config.axes_dim = *axes;
  return absl::OkStatus();
}

void NamePreset(FluxConfig& config, const std::vector<FluxConfig>& presets) {
  config.name = "custom";
  for (FluxConfig candidate : presets) {
    const bool fewer_blocks =
        config.depth <= candidate.depth && config.depth_single <= candidate.depth_single;
    const std::string name = candidate.name;
    candidate.depth = config.depth;
    candidate.depth_single = config.depth_single;
    if (fewer_blocks && candidate.SameArchitecture(config)) {
      config.name = name;
      return;
    }
  }
}

std::optional<std::string> NormalizeFluxKey(const std::string& raw) {
  const std::string key = StripModelPrefix(raw);
  if (absl::StartsWith(key, "transformer_blocks.")) {
    return RenameBlockKey(key, "transformer_blocks.", "double_blocks.", DoubleRenames());
  }
  if (absl::StartsWith(key, "single_transformer_blocks.")) {
    return RenameBlockKey(key, "single_transformer_blocks.", "single_blocks.", SingleRenames());
  }
  if (auto renamed = RenameByPrefix(key, GlobalRenames())) return renamed;
  // BFL / ComfyUI names are the internal ones: kept when they belong to a Flux module.
  static const auto* modules = new std::vector<std::string>{
      "double_blocks.", "single_blocks.", "img_in.",      "txt_in.",
      "time_in.",       "vector_in.",     "guidance_in.", "final_layer."};
  for (const std::string& module : *modules) {
    if (absl::StartsWith(key, module)) return key;
  }
  return std::nullopt;
}

WeightShapes FluxWeightShapes(const FluxConfig& c, FluxSpelling spelling) {
  WeightShapes shapes;
  const int64_t h = c.hidden;
  const bool b = c.bias;
  Linear(shapes, "img_in", c.in_channels(), h, b);
  Linear(shapes, "txt_in", c.context_dim, h, b);
  if (c.text_norm) shapes["txt_norm.scale"] = {c.context_dim};
  for (const std::string embedder : {"time_in", "vector_in", "guidance_in"}) {
    if (c.chroma()) break;
    if (embedder == "guidance_in" && !c.guidance_embed) continue;
    if (embedder == "vector_in" && c.vec_dim == 0) continue;
    Linear(shapes, embedder + ".in_layer", embedder == "vector_in" ? c.vec_dim : 256, h, b);
    Linear(shapes, embedder + ".out_layer", h, h, b);
  }
  if (c.chroma()) {
    const std::string layer = "distilled_guidance_layer.";
    const int64_t a = c.approximator_hidden;
    Linear(shapes, layer + "in_proj", 64, a);
    for (int64_t i = 0; i < c.approximator_layers; ++i) {
      Linear(shapes, absl::StrCat(layer, "layers.", i, ".in_layer"), a, a);
      Linear(shapes, absl::StrCat(layer, "layers.", i, ".out_layer"), a, a);
      shapes[absl::StrCat(layer, "norms.", i, ".scale")] = {a};
    }
    Linear(shapes, layer + "out_proj", a, h);
  } else {
    Linear(shapes,
           spelling == FluxSpelling::kFused ? "final_layer.adaLN_modulation.1"
                                            : "final_layer.scale_shift",
           h, 2 * h, b);
  }
  if (c.shared_modulation) {
    Linear(shapes, "double_mod_img.lin", h, 6 * h, false);
    Linear(shapes, "double_mod_txt.lin", h, 6 * h, false);
    Linear(shapes, "single_mod.lin", h, 3 * h, false);
  }
  const bool own_modulation = !c.chroma() && !c.shared_modulation;
  Linear(shapes, "final_layer.linear", h, c.patch * c.patch * c.latent_channels, b);
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string block = absl::StrCat("double_blocks.", i, ".");
    for (const std::string stream : {"img", "txt"}) {
      const std::string s = block + stream;
      if (own_modulation) Linear(shapes, s + "_mod.lin", h, 6 * h);
      Fused(shapes, s + "_attn.qkv", h, {{"q", h}, {"k", h}, {"v", h}}, spelling, b);
      shapes[s + "_attn.norm.query_norm.scale"] = {c.head_dim()};
      shapes[s + "_attn.norm.key_norm.scale"] = {c.head_dim()};
      Linear(shapes, s + "_attn.proj", h, h, b);
      Linear(shapes, s + "_mlp.0", h, c.mlp_in(), b);
      Linear(shapes, s + "_mlp.2", c.mlp_hidden, h, b);
    }
  }
  // Flux 2's diffusers spelling keeps the single blocks' fused projection.
  const FluxSpelling single = c.shared_modulation ? FluxSpelling::kFused : spelling;
  for (int64_t i = 0; i < c.depth_single; ++i) {
    const std::string block = absl::StrCat("single_blocks.", i, ".");
    if (own_modulation) Linear(shapes, block + "modulation.lin", h, 3 * h);
    Fused(shapes, block + "linear1", h, {{"q", h}, {"k", h}, {"v", h}, {"mlp", c.mlp_in()}}, single,
          b);
    Linear(shapes, block + "linear2", h + c.mlp_hidden, h, b);
    shapes[block + "norm.query_norm.scale"] = {c.head_dim()};
    shapes[block + "norm.key_norm.scale"] = {c.head_dim()};
  }
  return shapes;
}

LoraRowMap FluxLoraRows(const FluxConfig& c,
                        const std::function<bool(const std::string&)>& has_weight) {
  LoraRowMap rows;
  const int64_t h = c.hidden;
  using Parts = std::vector<std::pair<std::string, int64_t>>;
  // `fused`'s parts in row order: the parts' names onto the fused matrix's rows, or the fused
  // name onto the parts, whichever the checkpoint lacks.
  auto fused_projection = [&](const std::string& fused, const Parts& parts) {
    const bool whole = has_weight(fused + ".weight");
    int64_t offset = 0;
    for (const auto& [part, count] : parts) {
      const std::string name = fused + "." + part;
      if (whole) {
        rows[name] = {{fused, 0, offset, count}};
      } else if (has_weight(name + ".weight")) {
        rows[fused].push_back({name, offset, 0, count});
      }
      offset += count;
    }
  };
  const Parts qkv = {{"q", h}, {"k", h}, {"v", h}};
  for (int64_t i = 0; i < c.depth; ++i) {
    for (const std::string stream : {"img", "txt"}) {
      fused_projection(absl::StrCat("double_blocks.", i, ".", stream, "_attn.qkv"), qkv);
    }
  }
  for (int64_t i = 0; i < c.depth_single; ++i) {
    const std::string linear1 = absl::StrCat("single_blocks.", i, ".linear1");
    fused_projection(linear1, {{"q", h}, {"k", h}, {"v", h}, {"mlp", c.mlp_in()}});
    // A trainer's name for the attention's rows of linear1 (ComfyUI maps it too).
    if (has_weight(linear1 + ".weight")) {
      rows[linear1 + "_qkv"] = {{linear1, 0, 0, 3 * h}};
    } else if (has_weight(linear1 + ".q.weight")) {
      rows[linear1 + "_qkv"] = {
          {linear1 + ".q", 0, 0, h}, {linear1 + ".k", h, 0, h}, {linear1 + ".v", 2 * h, 0, h}};
    }
  }
  // The final modulation: (shift, scale) as BFL stores it, (scale, shift) in diffusers' order.
  for (const auto& [present, absent] :
       {std::pair<std::string, std::string>{"final_layer.adaLN_modulation.1",
                                            "final_layer.scale_shift"},
        {"final_layer.scale_shift", "final_layer.adaLN_modulation.1"}}) {
    if (has_weight(present + ".weight")) rows[absent] = {{present, 0, h, h}, {present, h, 0, h}};
  }
  return rows;
}

bool LooksLikeFlux(const FluxKeyShapes& c) {
  return c.shapes.contains("txt_in.weight") && c.shapes.contains("img_in.weight") &&
         (c.shapes.contains("double_blocks.0.img_mod.lin.weight") ||
          c.shapes.contains("single_blocks.0.modulation.lin.weight"));
}

FluxSpelling SpellingOf(const FluxKeyShapes& c) {
  return c.shapes.contains("final_layer.scale_shift.weight") ||
                 c.shapes.contains("double_blocks.0.img_attn.qkv.q.weight") ||
                 c.shapes.contains("single_blocks.0.linear1.q.weight")
             ? FluxSpelling::kSplit
             : FluxSpelling::kFused;
}

absl::StatusOr<FluxConfig> DetectFluxConfig(const FluxKeyShapes& c) {
  FluxConfig config;
  const std::vector<int64_t>* vector_in = ShapeOf(c, "vector_in.in_layer.weight");
  if (vector_in == nullptr || vector_in->size() != 2) {
    return absl::InvalidArgumentError(
        "flux checkpoint: 'vector_in.in_layer.weight' is missing or not of rank 2");
  }
  config.vec_dim = (*vector_in)[1];
  config.guidance_embed = c.shapes.contains("guidance_in.in_layer.weight");
  if (auto status = DetectSizes(c, "flux", config); !status.ok()) return status;
  std::vector<FluxConfig> presets;
  for (const std::string& preset : FluxPresetNames()) presets.push_back(*FluxPreset(preset));
  NamePreset(config, presets);
  if (auto status = config.Validate(); !status.ok()) return status;
  return config;
}

absl::Status CheckFluxWeights(const FluxKeyShapes& c, const FluxConfig& config) {
  return CheckWeightShapes("Flux", config.name, FluxWeightShapes(config, SpellingOf(c)), c.shapes,
                           c.unknown_keys);
}

absl::StatusOr<FluxConfig> InspectFluxCheckpoint(const std::vector<std::string>& paths) {
  auto shapes = ReadKeyShapes(paths, NormalizeFluxKey);
  if (!shapes.ok()) return shapes.status();
  auto config = DetectFluxConfig(*shapes);
  if (!config.ok()) return config.status();
  if (auto status = CheckFluxWeights(*shapes, *config); !status.ok()) return status;
  return config;
}

}  // namespace raylight::models::flux
