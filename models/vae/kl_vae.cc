#include "models/vae/kl_vae.h"

#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/checkpoint.h"
#include "models/core/latent_patches.h"
#include "runtime/common/status_macros.h"

namespace raylight::models::vae {

using at::Tensor;

// FLUX.2's batch-norm epsilon (BFL's and diffusers' batch_norm_eps).
constexpr double kFlux2BatchNormEps = 1e-4;

absl::StatusOr<std::unique_ptr<KlVae>> KlVae::Load(const std::vector<std::string>& paths,
                                                   const KlVaeOptions& options) {
  if (paths.empty()) return absl::InvalidArgumentError("VAE: no file");
  // Opened under the files' own names: they tell the spelling and the config.
  RL_ASSIGN_OR_RETURN(
      Checkpoint checkpoint,
      OpenCheckpoint(paths,
                     [](const std::string& raw) -> std::optional<std::string> { return raw; }));
  RL_ASSIGN_OR_RETURN(KlVaeKeyMap map, MapKlVaeKeys(KeyShapesOf(checkpoint).shapes));
  std::map<std::string, Tensor> weights;
  try {
    for (const auto& [raw, internal] : map.internal_by_raw) {
      // Norm parameters and FLUX.2's latent statistics stay float32 (the norms run in float32).
      const bool norm = internal.find("norm") != std::string::npos || internal.starts_with("bn.");
      Tensor value = Materialize(checkpoint.tensors.at(raw), norm ? at::kFloat : options.dtype,
                                 options.device);
      // diffusers' attention projections are linears ([C, C]); LDM's are 1x1 convolutions.
      if (internal.find(".mid.attn_1.") != std::string::npos && value.dim() == 4) {
        value = value.flatten(1);
      }
      weights[internal] = value;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("VAE: ", e.what_without_backtrace()));
  }
  return std::unique_ptr<KlVae>(new KlVae(map.config, options, std::move(weights)));
}

int64_t KlVae::bytes() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : weights_) total += tensor.nbytes();
  return total;
}

Tensor KlVae::GroupNormSilu(const Tensor& x, const std::string& norm, bool silu) const {
  // 32 groups and eps 1e-6, as every AutoencoderKL has them.
  Tensor y = at::group_norm(x.to(at::kFloat), 32, W(norm + ".weight"), W(norm + ".bias"), 1e-6);
  if (silu) y = at::silu(y);
  return y.to(options_.dtype);
}

Tensor KlVae::Conv(const Tensor& x, const std::string& conv, int64_t padding,
                   int64_t stride) const {
  return at::conv2d(x, W(conv + ".weight"), W(conv + ".bias"), stride, padding);
}

Tensor KlVae::Resnet(const Tensor& x, const std::string& at) const {
  Tensor h = Conv(GroupNormSilu(x, at + ".norm1", true), at + ".conv1", 1);
  h = Conv(GroupNormSilu(h, at + ".norm2", true), at + ".conv2", 1);
  const std::string shortcut = at + ".nin_shortcut";
  const Tensor skip = weights_.contains(shortcut + ".weight") ? Conv(x, shortcut, 0) : x;
  return skip + h;
}

Tensor KlVae::Attention(const Tensor& x, const std::string& at) const {
  // One head over every position: [B, HW, C] with the 1/sqrt(C) scale.
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const Tensor h = GroupNormSilu(x, at + ".norm", false).flatten(2).transpose(1, 2);
  auto project = [&](const std::string& name) {
    return at::linear(h, W(at + "." + name + ".weight"), W(at + "." + name + ".bias"));
  };
  const Tensor out = at::scaled_dot_product_attention(
      project("q").unsqueeze(1), project("k").unsqueeze(1), project("v").unsqueeze(1));
  const Tensor projected =
      at::linear(out.squeeze(1), W(at + ".proj_out.weight"), W(at + ".proj_out.bias"));
  return x + projected.transpose(1, 2).reshape({batch, channels, height, width});
}

Tensor KlVae::LatentStd() const {
  return (W("bn.running_var") + kFlux2BatchNormEps).sqrt().view({1, -1, 1, 1});
}

Tensor KlVae::Middle(const Tensor& x, const std::string& side) const {
  Tensor h = Resnet(x, side + ".mid.block_1");
  h = Attention(h, side + ".mid.attn_1");
  return Resnet(h, side + ".mid.block_2");
}

absl::StatusOr<Tensor> KlVae::Encode(const Tensor& pixels) const {
  if (!config_.encoder) {
    return absl::FailedPreconditionError("VAE: the file has no encoder (a decoder-only file)");
  }
  // Pixels per LATENT cell: FLUX.2's 2x2 patches make it twice the VAE's factor.
  const int64_t factor = config_.model_spatial_factor();
  if (pixels.dim() != 4 || pixels.size(1) != 3 || pixels.size(2) % factor != 0 ||
      pixels.size(3) % factor != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pixels: expected [B, 3, H, W] with H and W multiples of ", factor, ", got [",
                     absl::StrJoin(pixels.sizes(), ", "), "]"));
  }
  try {
    Tensor x = Conv(pixels.to(options_.device, options_.dtype), "encoder.conv_in", 1);
    const auto levels = static_cast<int64_t>(config_.level_channels.size());
    for (int64_t level = 0; level < levels; ++level) {
      const std::string at = absl::StrCat("encoder.down.", level);
      for (int64_t block = 0; block + 1 < config_.blocks_per_level; ++block) {
        x = Resnet(x, absl::StrCat(at, ".block.", block));
      }
      if (level + 1 < levels) {
        // Zero padding on the right and bottom only, then a stride-2 3x3 convolution.
        x = Conv(at::constant_pad_nd(x, {0, 1, 0, 1}), at + ".downsample.conv", 0, 2);
      }
    }
    x = Middle(x, "encoder");
    x = Conv(GroupNormSilu(x, "encoder.norm_out", true), "encoder.conv_out", 1);
    if (config_.post_quant_conv) x = Conv(x, "quant_conv", 0);
    // The posterior's mode: its mean, the first half of the channels (the log-variance the rest).
    Tensor mean = x.narrow(1, 0, config_.latent_channels).to(at::kFloat);
    if (config_.latent_patch > 1) {
      // FLUX.2: 2x2 patches into the channels, then normalised by the batch-norm statistics,
      // as its pipeline makes image latents.
      mean = (FoldLatentPatches(mean, config_.latent_patch) -
              W("bn.running_mean").view({1, -1, 1, 1})) /
             LatentStd();
    }
    return mean.contiguous();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("VAE encode: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<Tensor> KlVae::Decode(const Tensor& latent_in) const {
  const Tensor latent =
      latent_in.dim() == 5 && latent_in.size(2) == 1 ? latent_in.squeeze(2) : latent_in;
  const int64_t channels = config_.model_latent_channels();
  if (latent.dim() != 4 || latent.size(1) != channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("latent: expected [B, ", channels, ", h, w] (or [B, ", channels,
                     ", 1, h, w]), got [", absl::StrJoin(latent_in.sizes(), ", "), "]"));
  }
  try {
    Tensor x = latent;
    if (config_.latent_patch > 1) {
      // FLUX.2: the statistics undone, then the 2x2 patches out of the channels.
      x = UnfoldLatentPatches(x.to(options_.device, at::kFloat) * LatentStd() +
                                  W("bn.running_mean").view({1, -1, 1, 1}),
                              config_.latent_patch);
    }
    x = x.to(options_.device, options_.dtype);
    if (config_.post_quant_conv) x = Conv(x, "post_quant_conv", 0);
    x = Conv(x, "decoder.conv_in", 1);
    x = Middle(x, "decoder");
    for (int64_t level = static_cast<int64_t>(config_.level_channels.size()) - 1; level >= 0;
         --level) {
      const std::string at = absl::StrCat("decoder.up.", level);
      for (int64_t block = 0; block < config_.blocks_per_level; ++block) {
        x = Resnet(x, absl::StrCat(at, ".block.", block));
      }
      if (level > 0) {
        x = at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
        x = Conv(x, at + ".upsample.conv", 1);
      }
    }
    x = Conv(GroupNormSilu(x, "decoder.norm_out", true), "decoder.conv_out", 1);
    return x.to(at::kFloat);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("VAE decode: ", e.what_without_backtrace()));
  }
}

}  // namespace raylight::models::vae
