#include "models/qwen_image/qwen_image_keys.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/model_prefix.h"
#include "models/flux/flux_keys.h"

namespace raylight::models::qwen_image {
namespace {

using flux::FluxConfig;
using Renames = flux::KeyRenames;

const Renames& GlobalRenames() {
  static const auto* renames = new Renames{
      {"img_in.", "img_in."},
      {"txt_in.", "txt_in."},
      {"txt_norm.weight", "txt_norm.scale"},
      {"time_text_embed.timestep_embedder.linear_1.", "time_in.in_layer."},
      {"time_text_embed.timestep_embedder.linear_2.", "time_in.out_layer."},
      {"norm_out.linear.", "final_layer.scale_shift."},
      {"proj_out.", "final_layer.linear."},
  };
  return *renames;
}

const Renames& BlockRenames() {
  static const auto* renames = new Renames{
      {"img_mod.1.", "img_mod.lin."},
      {"txt_mod.1.", "txt_mod.lin."},
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
      {"img_mlp.net.0.proj.", "img_mlp.0."},
      {"img_mlp.net.2.", "img_mlp.2."},
      {"txt_mlp.net.0.proj.", "txt_mlp.0."},
      {"txt_mlp.net.2.", "txt_mlp.2."},
  };
  return *renames;
}

std::vector<FluxConfig> Presets() {
  FluxConfig full;
  full.name = "qwen-image";
  full.hidden = 3072;
  full.num_heads = 24;
  full.depth = 60;
  full.depth_single = 0;
  full.mlp_hidden = 4 * full.hidden;
  full.context_dim = 3584;  // Qwen2.5-VL 7B's hidden states
  full.vec_dim = 0;
  full.guidance_embed = false;
  full.text_norm = true;
  full.positions = flux::RopePositions::kQwenImage;
  full.time_scaled_last = true;
  full.axes_dim = {16, 56, 56};
  FluxConfig tiny = full;
  tiny.name = "tiny-qwen-image";
  tiny.hidden = 128;
  tiny.num_heads = 4;
  tiny.depth = 2;
  tiny.mlp_hidden = 4 * tiny.hidden;
  tiny.context_dim = 48;
  tiny.axes_dim = {4, 14, 14};
  return {full, tiny};
}

}  // namespace

absl::StatusOr<FluxConfig> QwenImagePreset(const std::string& name) {
  for (const FluxConfig& c : Presets()) {
    if (c.name == name) return c;
  }
  return absl::NotFoundError(absl::StrCat(
      "no Qwen-Image preset '", name, "'; known: ", absl::StrJoin(QwenImagePresetNames(), ", ")));
}

std::vector<std::string> QwenImagePresetNames() {
  std::vector<std::string> names;
  for (const FluxConfig& c : Presets()) names.push_back(c.name);
  return names;
}

std::optional<std::string> NormalizeQwenImageKey(const std::string& raw) {
  const std::string key = StripModelPrefix(raw);
  if (absl::StartsWith(key, "transformer_blocks.")) {
    return flux::RenameBlockKey(key, "transformer_blocks.", "double_blocks.", BlockRenames());
  }
  return flux::RenameByPrefix(key, GlobalRenames());
}

bool LooksLikeQwenImage(const KeyShapes& c) {
  return c.shapes.contains("txt_norm.scale") && c.shapes.contains("img_in.weight") &&
         c.shapes.contains("double_blocks.0.img_mod.lin.weight");
}

absl::StatusOr<FluxConfig> DetectQwenImageConfig(const KeyShapes& c) {
  FluxConfig config = *QwenImagePreset("qwen-image");
  if (auto status = flux::DetectSizes(c, "qwen-image", config); !status.ok()) return status;
  flux::NamePreset(config, Presets());
  if (auto status = config.Validate(); !status.ok()) return status;
  return config;
}

absl::Status CheckQwenImageWeights(const KeyShapes& c, const FluxConfig& config) {
  return CheckWeightShapes("Qwen-Image", config.name,
                           flux::FluxWeightShapes(config, flux::FluxSpelling::kSplit), c.shapes,
                           c.unknown_keys);
}

}  // namespace raylight::models::qwen_image
