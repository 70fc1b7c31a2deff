// Flux.1 checkpoint names: Black Forest Labs' own (also ComfyUI's, under its
// `model.diffusion_model.` prefix) and diffusers' FluxTransformer2DModel, mapped to one internal
// naming: BFL's, where a fused projection (a double block's `img_attn.qkv`, a single block's
// `linear1` = q, k, v and the MLP's input) that diffusers stores as separate matrices keeps its
// parts as `<fused>.q`, `<fused>.k`, `<fused>.v` (and `linear1.mlp`). The forward runs either form:
// one GEMM over a fused matrix, one per part otherwise. diffusers' final modulation stores
// (scale, shift) where BFL stores (shift, scale): it is named `final_layer.scale_shift`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/lora_keys.h"
#include "models/core/weight_shapes.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

// Any spelling -> internal name; nullopt for keys that are not Flux transformer weights.
std::optional<std::string> NormalizeFluxKey(const std::string& raw);

// How a checkpoint stores the projections BFL fuses.
enum class FluxSpelling {
  kFused,  // BFL / ComfyUI
  kSplit,  // diffusers
};

// Every weight `config` needs in `spelling`, internal name -> shape.
WeightShapes FluxWeightShapes(const FluxConfig& config, FluxSpelling spelling);

using FluxKeyShapes = KeyShapes;

// Whether the names are a Flux transformer's (a double-stream block and the text input).
bool LooksLikeFlux(const FluxKeyShapes& checkpoint);

// The spelling the checkpoint's first block uses.
FluxSpelling SpellingOf(const FluxKeyShapes& checkpoint);

// The config from the shapes: widths from img_in / txt_in / vector_in / the MLP, heads from the
// query norm's width, block counts from the names, guidance from guidance_in. The name is the
// preset whose sizes match (fewer blocks allowed), else "custom".
absl::StatusOr<FluxConfig> DetectFluxConfig(const FluxKeyShapes& checkpoint);

// DetectFluxConfig and CheckFluxWeights on the headers of the checkpoint in `paths`.
absl::StatusOr<FluxConfig> InspectFluxCheckpoint(const std::vector<std::string>& paths);

// Missing, extra and wrongly shaped weights against `config`, in one error naming them.
absl::Status CheckFluxWeights(const FluxKeyShapes& checkpoint, const FluxConfig& config);

// The modules a LoRA may name that this checkpoint (`has_weight`: whether it has a weight of
// that internal name) stores in other rows, as ComfyUI maps them (comfy/utils.py
// flux_to_diffusers and comfy/lora.py): on a checkpoint of fused projections, diffusers' parts
// (`double_blocks.N.img_attn.qkv.q` from `to_q`, a single block's `linear1.mlp` from `proj_mlp`)
// and a single block's `linear1_qkv`; on one of parts, the fused wholes (kohya's
// `lora_unet_double_blocks_N_img_attn_qkv`); and the final modulation in the other row order.
LoraRowMap FluxLoraRows(const FluxConfig& config,
                        const std::function<bool(const std::string&)>& has_weight);

// What the families on the Flux forward (Chroma, Qwen-Image) share to read their names:
// prefix renames (the first `from` a key starts with becomes `to`), block counts, the blocks'
// sizes and the preset a detected config is.
using KeyRenames = std::vector<std::pair<std::string, std::string>>;
std::optional<std::string> RenameByPrefix(const std::string& key, const KeyRenames& renames);
// A block's key "<prefix><n>.<rest>" as "<to><n>.<rest renamed>"; nullopt when the key is not
// under `prefix` or its rest has no rename.
std::optional<std::string> RenameBlockKey(const std::string& key, const std::string& prefix,
                                          const std::string& to, const KeyRenames& renames);
// One more than the largest block index under `prefix` ("double_blocks.").
int64_t BlockCount(const KeyShapes& checkpoint, const std::string& prefix);
// The sizes every Flux-shaped checkpoint shows: hidden and latent channels from img_in, the text
// width from txt_in, depth and depth_single from the names, heads from the first block's query
// norm, the MLP's width, RoPE axes; `family` starts every error.
absl::Status DetectSizes(const KeyShapes& checkpoint, const std::string& family,
                         FluxConfig& config);
// `config` named after the first of `presets` whose sizes it has (fewer blocks allowed), else
// "custom".
void NamePreset(FluxConfig& config, const std::vector<FluxConfig>& presets);

}  // namespace raylight::models::flux
