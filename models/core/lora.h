// LoRA files applied to a checkpoint before it is placed: the low-rank updates (and full weight
// or bias differences) merged into the weights they name, in float32, as ComfyUI merges them
// (comfy/lora.py load_lora, comfy/weight_adapter/lora.py): W += strength * (alpha / rank) *
// up @ down; `.diff` / `.diff_b` / `.w_norm` / `.b_norm`: W += strength * diff. Several LoRAs
// apply in order. Because the merge happens on the opened checkpoint, every placement (resident,
// layer swap, FSDP and its host shards) places the merged weights as it places any other. A GGUF
// weight stays quantised: its updates are attached to it (weight_patch.h) and applied in the same
// float32 arithmetic each time its block is dequantised, as ComfyUI-GGUF patches on the fly.
//
// Key spellings (a module key `x` names a weight; its update is `x.lora_up.weight` /
// `x.lora_down.weight`, `x.lora_B.weight` / `x.lora_A.weight`, `x_lora.up.weight`,
// `x.lora.up.weight`, `x.lora_linear_layer.up.weight`, `x.lora_B.default.weight` or
// `x.lora_B` / `x.lora_A`, with an optional `x.alpha`): kohya / ComfyUI (`lora_unet_` + the
// weight's name with '_' for '.', as ComfyUI builds its key map from the model's own names), the
// native and ComfyUI form (`diffusion_model.<name>`, or `<name>`), and any spelling the model's
// key normaliser knows (diffusers / PEFT `transformer.blocks.0.attn1.to_q`). Keys that match no
// weight are listed (ComfyUI logs "lora key not loaded"); a LoRA none of whose keys match is
// refused as one for another architecture. A module the checkpoint stores in another arrangement
// (`remapped`, lora_keys.h) patches the rows its pieces name, as ComfyUI's offsets do for
// diffusers' Flux LoRAs on BFL's fused weights; the reverse (a fused module's LoRA on a checkpoint
// of parts) gives each part its rows of the update.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/checkpoint.h"
#include "models/core/lora_keys.h"

namespace raylight::models {

struct LoraFile {
  std::string path;
  double strength = 1.0;
};

struct LoraReport {
  int patched_tensors = 0;
  std::vector<std::string> unmatched_keys;  // per file, "file: key"
};

// Merges `loras` into `checkpoint` (the patched tensors become owned tensors in their stored
// dtype; fp8 scaled weights are requantised over their own scale as ComfyUI does,
// fp8_requantize.h; GGUF weights keep their blocks and carry the updates, on `device` when
// `keep_on_device`), computing on
// `device`. `keep_on_device`: the merged tensors stay on `device` (a resident placement there
// then uses them as they are; a round trip through pageable host memory made a 14B merge 13x
// the load), else they go back to host memory (swap and FSDP place from there). Errors name
// the file and key: an unreadable file, a LoRA of another model, shapes that do not fit,
// LyCORIS's CP decomposition (not supported yet).
// `attach`: no tensor is merged here; every patched tensor carries its updates (checked now), and
// whoever materialises it merges them — FSDP's shard fill merges only the rows of the rank's own
// shard, so no rank holds a merged copy of the whole model.
absl::StatusOr<LoraReport> ApplyLoras(Checkpoint& checkpoint, const std::vector<LoraFile>& loras,
                                      const KeyNormalizer& normalize, at::Device device,
                                      bool keep_on_device = false, bool attach = false,
                                      const LoraRowMap& remapped = {});

}  // namespace raylight::models
