// What any diffusion checkpoint is, from its header alone (torch-free: the head plans jobs with
// it, the worker's engine sizes and places models with it): its family and variant, the numbers
// the mesh planner and the placement planner need, and its latent's geometry. Each family fills
// it from its own detection (models/<family>/); InspectModel asks each registered family in turn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models {

struct ModelInfo {
  std::string family;   // "wan", "flux"
  std::string variant;  // the family's preset name ("wan2.1-t2v-14b", "flux1-dev"), or "custom"
  int num_heads = 0;    // attention heads (Ulysses degrees must divide them)
  // The LATENT: [B, C, F, H, W] for video families, [B, C, H, W] for image ones.
  bool video = true;
  int64_t latent_channels = 16;
  int64_t spatial_factor = 8;   // the VAE's compression of width and height
  int64_t temporal_factor = 4;  // of frames (video): 4k + 1 frames make k + 1 latent frames
  int64_t patch_t = 1, patch_h = 2, patch_w = 2;  // the transformer's patch over the latent
  // Tokens beside the image's in the attention sequence (Flux's joint text tokens: 512 for a
  // T5 prompt padded as the pipelines pad it); 0 where text enters by cross-attention (Wan).
  int64_t joint_text_tokens = 0;
  // A guidance-distilled model takes its guidance strength as an input (Flux.1-dev): classifier-
  // free guidance is not how it is run, and CFG parallelism has nothing to split.
  bool guidance_distilled = false;

  // Attention tokens of one sample of a latent frames x height x width (latent units; frames 1
  // for image families), text included where it joins the sequence.
  int64_t Tokens(int64_t frames, int64_t height, int64_t width) const;
  // The same for a job's pixel size (frames 1 for image families).
  int64_t PixelTokens(int64_t frames, int64_t height, int64_t width) const;
};

// The model in `paths` (safetensors shards or a GGUF file): the first registered family whose
// names the checkpoint has (Flux: double-stream blocks and a text input; Wan otherwise), with that
// family's detection and checks. Errors are the family's, naming the file and key.
absl::StatusOr<ModelInfo> InspectModel(const std::vector<std::string>& paths);

}  // namespace raylight::models
