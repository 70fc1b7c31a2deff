#include "models/flux2/flux2_keys.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/model_prefix.h"
#include "models/flux/flux_keys.h"

namespace raylight::models::flux2 {
namespace {

using flux::FluxConfig;
using flux::KeyRenames;

const KeyRenames& GlobalRenames() {
  static const auto* renames = new KeyRenames{
      {"x_embedder.", "img_in."},
      {"context_embedder.", "txt_in."},
      {"time_guidance_embed.timestep_embedder.linear_1.", "time_in.in_layer."},
      {"time_guidance_embed.timestep_embedder.linear_2.", "time_in.out_layer."},
      {"time_guidance_embed.guidance_embedder.linear_1.", "guidance_in.in_layer."},
      {"time_guidance_embed.guidance_embedder.linear_2.", "guidance_in.out_layer."},
      {"double_stream_modulation_img.linear.", "double_mod_img.lin."},
      {"double_stream_modulation_txt.linear.", "double_mod_txt.lin."},
      {"single_stream_modulation.linear.", "single_mod.lin."},
      {"norm_out.linear.", "final_layer.scale_shift."},
      {"proj_out.", "final_layer.linear."},
      // Black Forest Labs' (and ComfyUI's) names for the shared modulation; their other names
      // are the internal ones.
      {"double_stream_modulation_img.lin.", "double_mod_img.lin."},
      {"double_stream_modulation_txt.lin.", "double_mod_txt.lin."},
      {"single_stream_modulation.lin.", "single_mod.lin."},
  };
  return *renames;
}

const KeyRenames& DoubleRenames() {
  static const auto* renames = new KeyRenames{
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
      {"ff.linear_in.", "img_mlp.0."},
      {"ff.linear_out.", "img_mlp.2."},
      {"ff_context.linear_in.", "txt_mlp.0."},
      {"ff_context.linear_out.", "txt_mlp.2."},
  };
  return *renames;
}

const KeyRenames& SingleRenames() {
  static const auto* renames = new KeyRenames{
      {"attn.to_qkv_mlp_proj.", "linear1."},
      {"attn.to_out.", "linear2."},
      {"attn.norm_q.weight", "norm.query_norm.scale"},
      {"attn.norm_k.weight", "norm.key_norm.scale"},
  };
  return *renames;
}

std::vector<FluxConfig> Presets() {
  FluxConfig full;
  full.name = "flux2-dev";
  full.latent_channels = 128;
  full.patch = 1;
  full.hidden = 6144;
  full.num_heads = 48;
  full.depth = 8;
  full.depth_single = 48;
  full.mlp_hidden = 3 * full.hidden;
  full.context_dim = 15360;  // Mistral Small 3.1's hidden states of three layers side by side
  full.vec_dim = 0;
  full.guidance_embed = true;
  full.axes_dim = {32, 32, 32, 32};
  full.theta = 2000;
  full.positions = flux::RopePositions::kFlux2;
  full.shared_modulation = true;
  full.swiglu = true;
  full.bias = false;
  FluxConfig tiny = full;
  tiny.name = "tiny-flux2";
  tiny.hidden = 128;
  tiny.num_heads = 4;
  tiny.depth = 2;
  tiny.depth_single = 2;
  tiny.mlp_hidden = 3 * tiny.hidden;
  tiny.context_dim = 48;
  tiny.axes_dim = {8, 8, 8, 8};
  return {full, tiny};
}

}  // namespace

absl::StatusOr<FluxConfig> Flux2Preset(const std::string& name) {
  for (const FluxConfig& c : Presets()) {
    if (c.name == name) return c;
  }
  return absl::NotFoundError(absl::StrCat("no FLUX.2 preset '", name,
                                          "'; known: ", absl::StrJoin(Flux2PresetNames(), ", ")));
}

std::vector<std::string> Flux2PresetNames() {
  std::vector<std::string> names;
  for (const FluxConfig& c : Presets()) names.push_back(c.name);
  return names;
}

std::optional<std::string> NormalizeFlux2Key(const std::string& raw) {
  const std::string key = StripModelPrefix(raw);
  if (absl::StartsWith(key, "transformer_blocks.")) {
    return flux::RenameBlockKey(key, "transformer_blocks.", "double_blocks.", DoubleRenames());
  }
  if (absl::StartsWith(key, "single_transformer_blocks.")) {
    return flux::RenameBlockKey(key, "single_transformer_blocks.", "single_blocks.",
                                SingleRenames());
  }
  if (auto renamed = flux::RenameByPrefix(key, GlobalRenames())) return renamed;
  static const auto* modules =
      new std::vector<std::string>{"double_blocks.", "single_blocks.", "img_in.",     "txt_in.",
                                   "time_in.",       "guidance_in.",   "final_layer."};
  for (const std::string& module : *modules) {
    if (absl::StartsWith(key, module)) return key;
  }
  return std::nullopt;
}

bool LooksLikeFlux2(const KeyShapes& c) {
  return c.shapes.contains("double_mod_img.lin.weight") && c.shapes.contains("img_in.weight") &&
         c.shapes.contains("txt_in.weight");
}

absl::StatusOr<FluxConfig> DetectFlux2Config(const KeyShapes& c) {
  FluxConfig config = *Flux2Preset("flux2-dev");
  config.guidance_embed = c.shapes.contains("guidance_in.in_layer.weight");
  if (auto status = flux::DetectSizes(c, "flux2", config); !status.ok()) return status;
  // RoPE: four equal axes of the head (Flux 2's 32 x 4 of 128).
  const int64_t axis = config.head_dim() / 4;
  if (config.head_dim() % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("flux2 checkpoint: head_dim ", config.head_dim(),
                                                   " does not split into 4 even axes"));
  }
  config.axes_dim = {axis, axis, axis, axis};
  flux::NamePreset(config, Presets());
  if (auto status = config.Validate(); !status.ok()) return status;
  if (auto status = CheckWeightShapes("FLUX.2", config.name,
                                      flux::FluxWeightShapes(config, flux::SpellingOf(c)), c.shapes,
                                      c.unknown_keys);
      !status.ok()) {
    return status;
  }
  return config;
}

}  // namespace raylight::models::flux2
