// Wan 2.1 / 2.2 transformer configurations (../shared/reference/wan.md, "Configs").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models::wan {

enum class WanFamily {
  kT2V,   // text to video (Wan 2.1 1.3B / 14B)
  kI2V,   // image to video: 36 input channels, CLIP-vision tokens through img_emb
  kTI2V,  // Wan 2.2 5B: 48 channels, per-token timesteps (a conditioning first frame at t = 0)
};

struct WanConfig {
  std::string name;  // preset name, or "custom" for a detected shape that matches none
  WanFamily family = WanFamily::kT2V;
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  int64_t in_channels = 16;
  int64_t out_channels = 16;
  int64_t text_dim = 4096;
  int64_t text_len = 512;  // context is zero-padded to at least this many tokens
  int64_t freq_dim = 256;
  int64_t image_dim = 1280;    // CLIP-vision feature width (I2V)
  int64_t image_tokens = 257;  // CLIP-vision tokens (I2V)
  double eps = 1e-6;
  int64_t patch_t = 1, patch_h = 2, patch_w = 2;

  // The longest text taken: ComfyUI's umT5 never truncates a prompt (it pads to text_len and
  // hands longer ones over whole), so a long prompt reaches the DiT with more rows than
  // text_len; the bound keeps one job's cross-attention keys in reason.
  static constexpr int64_t kMaxTextTokens = 4096;

  int64_t head_dim() const { return dim / num_heads; }
  // The VAE's compression of width and height: 8, or 16 for Wan 2.2's 48-channel VAE (time: 4).
  int64_t vae_spatial() const { return out_channels == 48 ? 16 : 8; }
  // Tokens of a latent of frames x height x width (latent units), after patching.
  int64_t Tokens(int64_t frames, int64_t height, int64_t width) const {
    return (frames / patch_t) * (height / patch_h) * (width / patch_w);
  }
  bool i2v() const { return family == WanFamily::kI2V; }
  bool per_token_timesteps() const { return family == WanFamily::kTI2V; }
  // Parameters (weights and biases), for memory planning and FLOP counts.
  int64_t ParameterCount() const;
  int64_t BlockParameterCount() const;
  // Checks internal consistency (heads divide dim, RoPE split is even, ...).
  absl::Status Validate() const;
  // Whether `other` has this model's architecture: what the forward, the latent and the
  // conditioning depend on (Wan 2.2 A14B's two experts must share it).
  bool SameArchitecture(const WanConfig& other) const;
};

// "wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.1-i2v-14b", "wan2.2-ti2v-5b", and the test sizes
// "tiny-t2v", "tiny-i2v", "tiny-ti2v".
absl::StatusOr<WanConfig> WanPreset(const std::string& name);
std::vector<std::string> WanPresetNames();

}  // namespace raylight::models::wan
