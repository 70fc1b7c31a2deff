#include "models/vae/wan_vae_keys.h"

#include <functional>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace raylight::models::vae {
namespace {

// Walks the module tree of a config, calling `emit(internal, diffusers, shape)` for every
// weight: one walk gives both the shapes and the second spelling, so they cannot disagree.
class Tree {
 public:
  using Emit = std::function<void(const std::string&, const std::string&, std::vector<int64_t>)>;
  Tree(const WanVaeConfig& config, Emit emit) : c_(config), emit_(std::move(emit)) {}

  void Walk() {
    const int64_t z = c_.z_dim;
    const int64_t pixels = c_.image_channels * c_.patch_size * c_.patch_size;
    Conv3("conv1", "quant_conv", 2 * z, 2 * z, 1);
    Conv3("conv2", "post_quant_conv", z, z, 1);
    Encoder(pixels);
    Decoder(pixels);
  }

 private:
  void Tensor(const std::string& internal, const std::string& diffusers,
              std::vector<int64_t> shape) {
    emit_(internal, diffusers, std::move(shape));
  }
  void Conv3(const std::string& in, const std::string& df, int64_t cin, int64_t cout, int64_t k) {
    Tensor(in + ".weight", df + ".weight", {cout, cin, k, k, k});
    Tensor(in + ".bias", df + ".bias", {cout});
  }
  void Conv2(const std::string& in, const std::string& df, int64_t cin, int64_t cout, int64_t k) {
    Tensor(in + ".weight", df + ".weight", {cout, cin, k, k});
    Tensor(in + ".bias", df + ".bias", {cout});
  }
  void Gamma(const std::string& in, const std::string& df, int64_t dim, bool images) {
    if (images) {
      Tensor(in + ".gamma", df + ".gamma", {dim, 1, 1});
    } else {
      Tensor(in + ".gamma", df + ".gamma", {dim, 1, 1, 1});
    }
  }
  void Residual(const std::string& in, const std::string& df, int64_t cin, int64_t cout) {
    Gamma(in + ".residual.0", df + ".norm1", cin, false);
    Conv3(in + ".residual.2", df + ".conv1", cin, cout, 3);
    Gamma(in + ".residual.3", df + ".norm2", cout, false);
    Conv3(in + ".residual.6", df + ".conv2", cout, cout, 3);
    if (cin != cout) Conv3(in + ".shortcut", df + ".conv_shortcut", cin, cout, 1);
  }
  void Attention(const std::string& in, const std::string& df, int64_t dim) {
    Gamma(in + ".norm", df + ".norm", dim, true);
    Conv2(in + ".to_qkv", df + ".to_qkv", dim, 3 * dim, 1);
    Conv2(in + ".proj", df + ".proj", dim, dim, 1);
  }
  // Resample: `up` halves the width in 2.1 (its conv maps dim -> dim / 2), keeps it in 2.2.
  void Resample(const std::string& in, const std::string& df, int64_t dim, bool up, bool temporal) {
    const int64_t out = up && c_.version == 21 ? dim / 2 : dim;
    Conv2(in + ".resample.1", df + ".resample.1", dim, out, 3);
    if (temporal) {
      const int64_t time_out = up ? 2 * dim : dim;
      Tensor(in + ".time_conv.weight", df + ".time_conv.weight", {time_out, dim, 3, 1, 1});
      Tensor(in + ".time_conv.bias", df + ".time_conv.bias", {time_out});
    }
  }
  void Middle(const std::string& side, int64_t dim) {
    Residual(side + ".middle.0", side + ".mid_block.resnets.0", dim, dim);
    Attention(side + ".middle.1", side + ".mid_block.attentions.0", dim);
    Residual(side + ".middle.2", side + ".mid_block.resnets.1", dim, dim);
  }
  void Head(const std::string& side, int64_t dim, int64_t out) {
    Gamma(side + ".head.0", side + ".norm_out", dim, false);
    Conv3(side + ".head.2", side + ".conv_out", dim, out, 3);
  }

  void Encoder(int64_t pixels) {
    std::vector<int64_t> dims = {c_.encoder_dim};
    for (int64_t m : c_.dim_mult) dims.push_back(c_.encoder_dim * m);
    Conv3("encoder.conv1", "encoder.conv_in", pixels, dims[0], 3);
    int flat = 0;  // 2.1's flat list index
    for (int i = 0; i < c_.levels(); ++i) {
      int64_t in = dims[i];
      const int64_t out = dims[i + 1];
      const bool down = i != c_.levels() - 1;
      const bool temporal = down && c_.temporal_downsample[i];
      for (int j = 0; j < c_.num_res_blocks; ++j) {
        if (c_.version == 21) {
          const std::string name = absl::StrCat("encoder.downsamples.", flat);
          Residual(name, absl::StrCat("encoder.down_blocks.", flat), in, out);
          ++flat;
        } else {
          Residual(absl::StrCat("encoder.downsamples.", i, ".downsamples.", j),
                   absl::StrCat("encoder.down_blocks.", i, ".resnets.", j), in, out);
        }
        in = out;
      }
      if (!down) continue;
      if (c_.version == 21) {
        Resample(absl::StrCat("encoder.downsamples.", flat),
                 absl::StrCat("encoder.down_blocks.", flat), out, false, temporal);
        ++flat;
      } else {
        Resample(absl::StrCat("encoder.downsamples.", i, ".downsamples.", c_.num_res_blocks),
                 absl::StrCat("encoder.down_blocks.", i, ".downsampler"), out, false, temporal);
      }
    }
    Middle("encoder", dims.back());
    Head("encoder", dims.back(), 2 * c_.z_dim);
  }

  void Decoder(int64_t pixels) {
    std::vector<int64_t> dims = {c_.decoder_dim * c_.dim_mult.back()};
    for (auto it = c_.dim_mult.rbegin(); it != c_.dim_mult.rend(); ++it) {
      dims.push_back(c_.decoder_dim * *it);
    }
    Conv3("decoder.conv1", "decoder.conv_in", c_.z_dim, dims[0], 3);
    Middle("decoder", dims[0]);
    int flat = 0;
    for (int i = 0; i < c_.levels(); ++i) {
      // 2.1's upsampling conv halved the width: every level after the first starts at half.
      int64_t in = c_.version == 21 && i > 0 ? dims[i] / 2 : dims[i];
      const int64_t out = dims[i + 1];
      const bool up = i != c_.levels() - 1;
      const bool temporal = up && c_.temporal_downsample[c_.levels() - 2 - i];
      for (int j = 0; j <= c_.num_res_blocks; ++j) {
        if (c_.version == 21) {
          Residual(absl::StrCat("decoder.upsamples.", flat),
                   absl::StrCat("decoder.up_blocks.", i, ".resnets.", j), in, out);
          ++flat;
        } else {
          Residual(absl::StrCat("decoder.upsamples.", i, ".upsamples.", j),
                   absl::StrCat("decoder.up_blocks.", i, ".resnets.", j), in, out);
        }
        in = out;
      }
      if (!up) continue;
      if (c_.version == 21) {
        Resample(absl::StrCat("decoder.upsamples.", flat),
                 absl::StrCat("decoder.up_blocks.", i, ".upsamplers.0"), out, true, temporal);
        ++flat;
      } else {
        Resample(absl::StrCat("decoder.upsamples.", i, ".upsamples.", c_.num_res_blocks + 1),
                 absl::StrCat("decoder.up_blocks.", i, ".upsampler"), out, true, temporal);
      }
    }
    Head("decoder", dims.back(), pixels);
  }

  const WanVaeConfig& c_;
  Emit emit_;
};

std::string StripPrefix(const std::string& raw) {
  for (absl::string_view prefix : {"first_stage_model.", "vae."}) {
    if (absl::StartsWith(raw, prefix)) return std::string(raw.substr(prefix.size()));
  }
  return raw;
}

// The number of distinct integers N in keys that start with `prefix` followed by "N.".
int CountIndices(const std::map<std::string, std::vector<int64_t>>& keys,
                 const std::string& prefix) {
  int count = 0;
  for (int n = 0;; ++n) {
    const std::string want = absl::StrCat(prefix, n, ".");
    auto it = keys.lower_bound(want);
    if (it == keys.end() || !absl::StartsWith(it->first, want)) return count;
    ++count;
  }
}

}  // namespace

std::map<std::string, std::vector<int64_t>> WanVaeWeightShapes(const WanVaeConfig& config) {
  std::map<std::string, std::vector<int64_t>> shapes;
  Tree(config, [&](const std::string& internal, const std::string&, std::vector<int64_t> shape) {
    shapes[internal] = std::move(shape);
  }).Walk();
  return shapes;
}

std::map<std::string, std::string> WanVaeDiffusersNames(const WanVaeConfig& config) {
  std::map<std::string, std::string> names;
  Tree(config, [&](const std::string& internal, const std::string& diffusers,
                   std::vector<int64_t>) {
    names[internal] = diffusers;
  }).Walk();
  return names;
}

absl::StatusOr<WanVaeKeyMap> MapWanVaeKeys(
    const std::map<std::string, std::vector<int64_t>>& raw_shapes) {
  std::map<std::string, std::vector<int64_t>> stripped;
  std::map<std::string, std::string> raw_by_stripped;
  for (const auto& [raw, shape] : raw_shapes) {
    const std::string key = StripPrefix(raw);
    stripped[key] = shape;
    raw_by_stripped[key] = raw;
  }
  std::map<std::string, std::vector<int64_t>> internal_shapes;
  std::map<std::string, std::string> internal_by_stripped;
  if (stripped.contains("post_quant_conv.weight") || stripped.contains("decoder.conv_in.weight")) {
    // diffusers: a provisional config (widths and block counts read from the keys) names the
    // tree, which maps every key; DetectWanVaeConfig then checks the result like any file.
    WanVaeConfig provisional;
    provisional.version =
        stripped.contains("decoder.up_blocks.0.upsampler.resample.1.weight") ? 22 : 21;
    provisional.num_res_blocks = CountIndices(stripped, "decoder.up_blocks.0.resnets.") - 1;
    if (provisional.num_res_blocks < 1) {
      return absl::InvalidArgumentError(
          "Wan VAE (diffusers names): no decoder.up_blocks.0.resnets.* weights");
    }
    for (const auto& [key, shape] : stripped) {
      if (key == "decoder.conv_in.weight" && shape.size() == 5) provisional.z_dim = shape[1];
      if (key == "decoder.conv_out.weight" && shape.size() == 5) {
        provisional.decoder_dim = shape[1];
        provisional.patch_size = shape[0] == 12 ? 2 : 1;
      }
      if (key == "encoder.conv_in.weight" && shape.size() == 5) provisional.encoder_dim = shape[0];
    }
    for (int i = 0; i + 1 < provisional.levels(); ++i) {
      const std::string time_conv =
          provisional.version == 21
              ? absl::StrCat("encoder.down_blocks.", (i + 1) * (provisional.num_res_blocks + 1) - 1,
                             ".time_conv.weight")
              : absl::StrCat("encoder.down_blocks.", i, ".downsampler.time_conv.weight");
      provisional.temporal_downsample[i] = stripped.contains(time_conv);
    }
    for (const auto& [internal, diffusers] : WanVaeDiffusersNames(provisional)) {
      auto it = stripped.find(diffusers);
      if (it == stripped.end()) continue;
      internal_shapes[internal] = it->second;
      internal_by_stripped[diffusers] = internal;
    }
  } else {
    internal_shapes = stripped;
    for (const auto& [key, shape] : stripped) internal_by_stripped[key] = key;
  }
  absl::StatusOr<WanVaeConfig> config = DetectWanVaeConfig(internal_shapes);
  if (!config.ok()) return config.status();
  WanVaeKeyMap map;
  map.config = *std::move(config);
  const std::map<std::string, std::vector<int64_t>> needed = WanVaeWeightShapes(map.config);
  for (const auto& [key, internal] : internal_by_stripped) {
    if (needed.contains(internal)) map.internal_by_raw[raw_by_stripped[key]] = internal;
  }
  return map;
}

}  // namespace raylight::models::vae
