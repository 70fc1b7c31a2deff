#include "models/vae/wan_vae_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/vae/wan_vae_keys.h"

namespace raylight::models::vae {
namespace {

bool Has(const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& name) {
  return shapes.contains(name);
}

absl::StatusOr<std::vector<int64_t>> Shape(
    const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& name,
    size_t rank) {
  auto it = shapes.find(name);
  if (it == shapes.end()) {
    return absl::InvalidArgumentError(absl::StrCat("Wan VAE: no ", name, " weight"));
  }
  if (it->second.size() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("Wan VAE: ", name, " has shape [", absl::StrJoin(it->second, ", "), "]"));
  }
  return it->second;
}

}  // namespace

int64_t WanVaeConfig::spatial_factor() const { return (int64_t{1} << (levels() - 1)) * patch_size; }

int64_t WanVaeConfig::temporal_factor() const {
  int64_t factor = 1;
  for (bool halves : temporal_downsample) factor *= halves ? 2 : 1;
  return factor;
}

int64_t WanVaeConfig::DecodedFrames(int64_t latent_frames) const {
  return latent_frames <= 0 ? 0 : 1 + temporal_factor() * (latent_frames - 1);
}

int64_t WanVaeConfig::EncodedFrames(int64_t frames) const {
  return frames <= 0 ? 0 : 1 + (frames - 1) / temporal_factor();
}

absl::StatusOr<WanVaeConfig> WanVaePreset(const std::string& name) {
  WanVaeConfig config;
  config.name = name;
  if (name == "wan2.1") return config;
  if (name == "wan2.2") {
    config.version = 22;
    config.encoder_dim = 160;
    config.decoder_dim = 256;
    config.z_dim = 48;
    config.patch_size = 2;
    return config;
  }
  return absl::NotFoundError(
      absl::StrCat("unknown Wan VAE preset \"", name, "\" (known: wan2.1, wan2.2)"));
}

absl::StatusOr<WanVaeConfig> DetectWanVaeConfig(
    const std::map<std::string, std::vector<int64_t>>& shapes) {
  WanVaeConfig config;
  config.version = Has(shapes, "decoder.upsamples.0.upsamples.0.residual.0.gamma") ? 22 : 21;
  absl::StatusOr<std::vector<int64_t>> conv_in = Shape(shapes, "decoder.conv1.weight", 5);
  if (!conv_in.ok()) return conv_in.status();
  absl::StatusOr<std::vector<int64_t>> conv_out = Shape(shapes, "decoder.head.2.weight", 5);
  if (!conv_out.ok()) return conv_out.status();
  absl::StatusOr<std::vector<int64_t>> encoder_in = Shape(shapes, "encoder.conv1.weight", 5);
  if (!encoder_in.ok()) return encoder_in.status();
  config.z_dim = (*conv_in)[1];
  config.decoder_dim = (*conv_out)[1];
  config.encoder_dim = (*encoder_in)[0];
  const int64_t pixels = (*conv_out)[0];
  config.patch_size = pixels == 12 ? 2 : 1;
  if (pixels != config.image_channels * config.patch_size * config.patch_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("Wan VAE: the decoder makes ", pixels, " channels (3 or 12 expected)"));
  }
  // Residual blocks per level: 2.1 lists them flat, the first resample after num_res_blocks + 1
  // of them; 2.2 nests them.
  if (config.version == 21) {
    int first_resample = 0;
    while (first_resample < 64 &&
           !Has(shapes, absl::StrCat("decoder.upsamples.", first_resample, ".resample.1.weight"))) {
      ++first_resample;
    }
    config.num_res_blocks = first_resample - 1;
  } else {
    int count = 0;
    while (
        Has(shapes, absl::StrCat("decoder.upsamples.0.upsamples.", count, ".residual.0.gamma"))) {
      ++count;
    }
    config.num_res_blocks = count - 1;
  }
  if (config.num_res_blocks < 1 || config.num_res_blocks > 16) {
    return absl::InvalidArgumentError(
        "Wan VAE: cannot tell the residual blocks per level from decoder.upsamples.*");
  }
  config.temporal_downsample.assign(config.levels() - 1, false);
  for (int i = 0; i + 1 < config.levels(); ++i) {
    const std::string time_conv =
        config.version == 21
            ? absl::StrCat("encoder.downsamples.", (i + 1) * (config.num_res_blocks + 1) - 1,
                           ".time_conv.weight")
            : absl::StrCat("encoder.downsamples.", i, ".downsamples.", config.num_res_blocks,
                           ".time_conv.weight");
    config.temporal_downsample[i] = Has(shapes, time_conv);
  }
  // Every weight the config implies, with its shape: a width multiplier or level count other
  // than Wan's shows up here, named.
  for (const auto& [name, shape] : WanVaeWeightShapes(config)) {
    auto it = shapes.find(name);
    if (it == shapes.end()) {
      return absl::InvalidArgumentError(absl::StrCat("Wan VAE: missing weight ", name));
    }
    if (it->second != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("Wan VAE: ", name, " has shape [", absl::StrJoin(it->second, ", "),
                       "], expected [", absl::StrJoin(shape, ", "), "]"));
    }
  }
  if (config.version == 21 && config.encoder_dim == 96 && config.z_dim == 16) {
    config.name = "wan2.1";
  } else if (config.version == 22 && config.encoder_dim == 160 && config.z_dim == 48) {
    config.name = "wan2.2";
  }
  return config;
}

}  // namespace raylight::models::vae
