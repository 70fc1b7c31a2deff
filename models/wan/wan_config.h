// Wan 2.1 / 2.2 transformer configurations (../shared/reference/wan.md, "Configs").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models::wan {

// Wan's own default negative prompt (wan/configs/shared_config.py sample_neg_prompt), used when
// a job with a prompt gives none.
inline constexpr char kWanDefaultNegativePrompt[] =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
    "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容"
    "的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

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
  // FLF2V (first-last-frame) models: learned positions added to the start and end images'
  // CLIP tokens (img_emb.emb_pos, [1, 2 x image_tokens, image_dim]); 0 for other models.
  int64_t flf_pos_tokens = 0;
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
