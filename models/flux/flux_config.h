// Flux.1 transformer configurations (Black Forest Labs' `flux/model.py` FluxParams; ComfyUI's
// comfy/ldm/flux): dev, schnell and Krea share one architecture; schnell has no guidance
// embedding. Torch-free: the head detects a checkpoint's variant from its header.
//
// The same forward runs Qwen-Image (models/qwen_image), whose blocks are Flux's double-stream
// blocks under other names: no single-stream blocks, no pooled vector (vec_dim 0), an RMSNorm
// over the text before txt_in, and its own RoPE positions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models::flux {

// Where the RoPE positions of the joint sequence are.
enum class RopePositions {
  kFlux,       // text at (0, 0, 0); image (0, row, column)
  kQwenImage,  // image (0, row - rows/2, column - columns/2) as ComfyUI centres it; text at
               // (s + i, s + i, s + i) from s = max(rows/2, columns/2)
  kFlux2,      // four axes: image (0, row, column, 0); text (0, 0, 0, i)
};

struct FluxConfig {
  std::string name = "custom";   // preset name, or "custom" for a detected shape matching none
  int64_t latent_channels = 16;  // the VAE's channels; the model sees 2x2 patches of them
  int64_t patch = 2;
  int64_t hidden = 3072;
  int64_t num_heads = 24;
  int64_t depth = 19;          // double-stream blocks (text and image with their own weights)
  int64_t depth_single = 38;   // single-stream blocks (one joint sequence)
  int64_t mlp_hidden = 12288;  // hidden x mlp_ratio 4
  int64_t context_dim = 4096;  // T5-XXL token width
  int64_t vec_dim = 768;       // CLIP-L pooled vector width; 0: no pooled vector (Qwen-Image)
  bool text_norm = false;      // an RMSNorm ("txt_norm.scale") over the text before txt_in
  RopePositions positions = RopePositions::kFlux;
  // The time embedding's x1000 after the frequencies (Qwen-Image's rounding; BFL's before).
  bool time_scaled_last = false;
  // Chroma: no per-block modulation linears, no time / guidance / pooled embedders; every
  // block's modulation is rows of one table an MLP (its "distilled guidance layer": 64 inputs,
  // `approximator_layers` residual layers of `approximator_hidden`) makes. 0: Flux's.
  int64_t approximator_hidden = 0;
  int64_t approximator_layers = 5;
  int64_t modulation_rows = 344;  // ComfyUI's count whatever the blocks (19 + 38 use them all)
  // Flux 2: every block's modulation from three shared linears ("double_mod_img.lin",
  // "double_mod_txt.lin", "single_mod.lin"), SwiGLU MLPs (the input projection twice as wide:
  // silu(first half) x second half), no biases.
  bool shared_modulation = false;
  bool swiglu = false;
  bool bias = true;
  bool guidance_embed = true;  // dev / Krea: the distilled guidance strength is an input
  std::vector<int64_t> axes_dim = {16, 56, 56};  // RoPE widths of the (index, row, column) axes
  double theta = 10000;

  // The longest text taken: Flux pipelines pad T5 to 512 tokens (schnell 256); a longer prompt
  // from ComfyUI arrives whole, bounded here to keep one job's joint sequence in reason.
  static constexpr int64_t kMaxTextTokens = 4096;

  int64_t head_dim() const { return hidden / num_heads; }
  int64_t in_channels() const { return latent_channels * patch * patch; }
  int64_t num_blocks() const { return depth + depth_single; }
  bool chroma() const { return approximator_hidden > 0; }
  // The MLP input projection's width (SwiGLU's gate and value halves).
  int64_t mlp_in() const { return swiglu ? 2 * mlp_hidden : mlp_hidden; }
  // Image tokens of a latent of height x width (latent units; each side rounded up to the patch).
  int64_t Tokens(int64_t height, int64_t width) const {
    return ((height + patch - 1) / patch) * ((width + patch - 1) / patch);
  }
  int64_t ParameterCount() const;
  int64_t DoubleBlockParameterCount() const;
  int64_t SingleBlockParameterCount() const;
  absl::Status Validate() const;
  bool SameArchitecture(const FluxConfig& other) const;
};

// "flux1-dev" (also Krea), "flux1-schnell", and the test sizes "tiny-flux-dev",
// "tiny-flux-schnell" (4 heads of 32, 2 + 2 blocks).
absl::StatusOr<FluxConfig> FluxPreset(const std::string& name);
std::vector<std::string> FluxPresetNames();

// RoPE widths for a head of `head_dim`: Flux's 16 / 56 / 56 of 128 scaled (1/8, 7/16, 7/16);
// an error unless each is even.
absl::StatusOr<std::vector<int64_t>> FluxAxesFor(int64_t head_dim);

}  // namespace raylight::models::flux
