// The side keys of fp8-scaled checkpoints (ComfyUI's `scaled_fp8` files, diffusers' and
// ModelOpt's exports): a weight's scale rides beside it under its own key, and markers and input
// scales carry nothing a model computes with. Torch-free: the loader (checkpoint.h) attaches and
// drops them, and the head's header reads (weight_shapes.h) leave them out the same way, so a
// file's keys mean the same thing to both.
#pragma once

#include <optional>
#include <string>

namespace raylight::models {

// "<module>.scale_weight" (ComfyUI's) / "<module>.weight_scale" (diffusers', ModelOpt's) ->
// "<module>.weight", the weight the scale belongs to; nullopt for any other key.
std::optional<std::string> ScaledWeightName(const std::string& key);

// ComfyUI's `scaled_fp8` marker and the activations' input scales (fp8 compute here scales its
// activations per token itself).
bool IsDroppedScaleKey(const std::string& key);

}  // namespace raylight::models
