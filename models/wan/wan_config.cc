#include "models/wan/wan_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raylight::models::wan {
namespace {

WanConfig Make(std::string name, WanFamily family, int64_t dim, int64_t ffn, int64_t heads,
               int64_t layers, int64_t in, int64_t out) {
  WanConfig c;
  c.name = std::move(name);
  c.family = family;
  c.dim = dim;
  c.ffn_dim = ffn;
  c.num_heads = heads;
  c.num_layers = layers;
  c.in_channels = in;
  c.out_channels = out;
  return c;
}

std::vector<WanConfig> Presets() {
  std::vector<WanConfig> presets = {
      Make("wan2.1-t2v-1.3b", WanFamily::kT2V, 1536, 8960, 12, 30, 16, 16),
      Make("wan2.1-t2v-14b", WanFamily::kT2V, 5120, 13824, 40, 40, 16, 16),
      Make("wan2.1-i2v-14b", WanFamily::kI2V, 5120, 13824, 40, 40, 36, 16),
      // I2V's shape plus learned positions for the start and end images' 2 x 257 CLIP tokens.
      Make("wan2.1-flf2v-14b", WanFamily::kI2V, 5120, 13824, 40, 40, 36, 16),
      Make("wan2.2-ti2v-5b", WanFamily::kTI2V, 3072, 14336, 24, 30, 48, 48),
  };
  // Test sizes: 4 heads so that Ulysses degrees 2 and 4 divide, head_dim 16 (RoPE split
  // 8/4/4), small text and image widths.
  for (auto [name, family, in, out] : {std::tuple{"tiny-t2v", WanFamily::kT2V, 16, 16},
                                       std::tuple{"tiny-i2v", WanFamily::kI2V, 36, 16},
                                       std::tuple{"tiny-ti2v", WanFamily::kTI2V, 48, 48}}) {
    WanConfig c = Make(name, family, 64, 128, 4, 2, in, out);
    c.text_dim = 48;
    c.text_len = 512;  // diffusers assumes 512 text tokens when splitting I2V context
    c.image_dim = 40;
    c.image_tokens = 5;  // a 28-pixel CLIP grid of 2 x 2 patches of 14, and its class token
    presets.push_back(c);
  }
  WanConfig tiny_flf2v = presets[presets.size() - 2];  // tiny-i2v
  tiny_flf2v.name = "tiny-flf2v";
  presets.push_back(tiny_flf2v);
  for (WanConfig& c : presets) {
    if (absl::StrContains(c.name, "flf2v")) c.flf_pos_tokens = 2 * c.image_tokens;
  }
  return presets;
}

}  // namespace

int64_t WanConfig::BlockParameterCount() const {
  const int64_t attn = 4 * (dim * dim + dim) + 2 * dim;  // q k v o + norm_q norm_k
  int64_t cross = attn;
  if (i2v()) cross += 2 * (dim * dim + dim) + dim;  // k_img v_img + norm_k_img
  const int64_t ffn = dim * ffn_dim + ffn_dim + ffn_dim * dim + dim;
  return attn + cross + ffn + 2 * dim /* norm3 */ + 6 * dim /* modulation */;
}

int64_t WanConfig::ParameterCount() const {
  int64_t total = num_layers * BlockParameterCount();
  total += dim * in_channels * patch_t * patch_h * patch_w + dim;
  total += text_dim * dim + dim + dim * dim + dim;
  total += freq_dim * dim + dim + dim * dim + dim;
  total += dim * 6 * dim + 6 * dim;
  total +=
      dim * out_channels * patch_t * patch_h * patch_w + out_channels * patch_t * patch_h * patch_w;
  total += 2 * dim;
  if (i2v())
    total += 2 * image_dim + image_dim * image_dim + image_dim + image_dim * dim + dim + 2 * dim;
    total += flf_pos_tokens * image_dim;
  return total;
}

absl::Status WanConfig::Validate() const {
  if (dim <= 0 || num_heads <= 0 || dim % num_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("wan config: dim ", dim, " is not a multiple of ", num_heads, " heads"));
  }
  const int64_t d = head_dim();
  if (d % 2 != 0 || (d - 4 * (d / 6)) % 2 != 0 || d / 6 == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("wan config: head_dim ", d, " cannot be split into three even RoPE axes"));
  }
  if (num_layers < 1 || ffn_dim < 1 || in_channels < 1 || out_channels < 1 || text_dim < 1 ||
      text_len < 1 || freq_dim < 2 || freq_dim % 2 != 0) {
    return absl::InvalidArgumentError("wan config: sizes must be positive (freq_dim even)");
  }
  return absl::OkStatus();
}

bool WanConfig::SameArchitecture(const WanConfig& o) const {
  return family == o.family && dim == o.dim && ffn_dim == o.ffn_dim && num_heads == o.num_heads &&
         num_layers == o.num_layers && in_channels == o.in_channels &&
         out_channels == o.out_channels && text_dim == o.text_dim && patch_t == o.patch_t &&
         patch_h == o.patch_h && patch_w == o.patch_w;
}

absl::StatusOr<WanConfig> WanPreset(const std::string& name) {
  for (const WanConfig& preset : Presets()) {
    if (preset.name == name) return preset;
  }
  return absl::NotFoundError(absl::StrCat(
      "unknown Wan preset '", name, "' (known: ", absl::StrJoin(WanPresetNames(), ", "), ")"));
}

std::vector<std::string> WanPresetNames() {
  std::vector<std::string> names;
  for (const WanConfig& preset : Presets()) names.push_back(preset.name);
  return names;
}

}  // namespace raylight::models::wan
