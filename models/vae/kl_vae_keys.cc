#include "models/vae/kl_vae_keys.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace raylight::models::vae {
namespace {

// The name from `decoder.`, `encoder.`, `post_quant_conv.`, `quant_conv.` or FLUX.2's latent
// statistics `bn.running_mean` / `bn.running_var` on (any prefix before it dropped); nullopt for
// anything else.
std::optional<std::string> VaePart(const std::string& raw) {
  for (const std::string root : {"bn.running_mean", "bn.running_var"}) {
    if (raw == root || absl::EndsWith(raw, "." + root)) return root;
  }
  for (const std::string root : {"decoder.", "encoder.", "post_quant_conv.", "quant_conv."}) {
    if (absl::StartsWith(raw, root)) return raw;
    if (const size_t at = raw.find("." + root); at != std::string::npos) return raw.substr(at + 1);
  }
  return std::nullopt;
}

// diffusers' names inside a resnet (conv_shortcut is LDM's nin_shortcut) and the mid attention.
std::string ResnetPart(const std::string& rest) {
  return absl::StartsWith(rest, "conv_shortcut.") ? "nin_shortcut." + rest.substr(14) : rest;
}

std::optional<std::string> AttentionPart(const std::string& rest) {
  static const std::map<std::string, std::string> kNames = {{"group_norm.", "norm."},
                                                            {"to_q.", "q."},
                                                            {"to_k.", "k."},
                                                            {"to_v.", "v."},
                                                            {"to_out.0.", "proj_out."}};
  for (const auto& [from, to] : kNames) {
    if (absl::StartsWith(rest, from)) return to + rest.substr(from.size());
  }
  return std::nullopt;
}

// A diffusers encoder or decoder name in LDM's spelling; `levels` turns the decoder's up_blocks'
// order (deepest first) into LDM's up.N (shallowest first); the encoder's down_blocks.N are LDM's
// down.N.
std::optional<std::string> FromDiffusers(const std::string& name, int64_t levels) {
  const std::vector<std::string> parts = absl::StrSplit(name, absl::MaxSplits('.', 4));
  const std::string& side = parts[0];
  if (side == "post_quant_conv" || side == "quant_conv" || side == "bn") return name;
  if (parts.size() < 3) return std::nullopt;
  if (parts[1] == "conv_in" || parts[1] == "conv_out") return name;
  if (parts[1] == "conv_norm_out") return absl::StrCat(side, ".norm_out.", parts[2]);
  int index = 0;
  if (parts.size() == 5 && parts[1] == "mid_block" && parts[2] == "resnets" &&
      absl::SimpleAtoi(parts[3], &index) && index < 2) {
    return absl::StrCat(side, ".mid.block_", index + 1, ".", ResnetPart(parts[4]));
  }
  if (parts.size() == 5 && parts[1] == "mid_block" && parts[2] == "attentions" && parts[3] == "0") {
    const std::optional<std::string> rest = AttentionPart(parts[4]);
    if (rest) return absl::StrCat(side, ".mid.attn_1.", *rest);
    return std::nullopt;
  }
  const bool up = side == "decoder" && parts[1] == "up_blocks";
  const bool down = side == "encoder" && parts[1] == "down_blocks";
  if (parts.size() == 5 && (up || down) && absl::SimpleAtoi(parts[2], &index) && index < levels) {
    const std::string level = up ? absl::StrCat("decoder.up.", levels - 1 - index, ".")
                                 : absl::StrCat("encoder.down.", index, ".");
    const std::vector<std::string> tail = absl::StrSplit(parts[4], absl::MaxSplits('.', 1));
    if (parts[3] == "resnets" && tail.size() == 2) {
      return absl::StrCat(level, "block.", tail[0], ".", ResnetPart(tail[1]));
    }
    const char* sampler = up ? "upsamplers" : "downsamplers";
    if (parts[3] == sampler && tail.size() == 2 && tail[0] == "0") {
      return absl::StrCat(level, up ? "upsample." : "downsample.", tail[1]);
    }
  }
  return std::nullopt;
}

// The largest index + 1 of `prefix<N>.` among `names` (0: none).
int64_t CountIndices(const std::set<std::string>& names, const std::string& prefix) {
  int64_t count = 0;
  for (const std::string& name : names) {
    if (!absl::StartsWith(name, prefix)) continue;
    const std::string rest = name.substr(prefix.size());
    int64_t index = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find('.')), &index)) {
      count = std::max(count, index + 1);
    }
  }
  return count;
}

}  // namespace

absl::StatusOr<KlVaeKeyMap> MapKlVaeKeys(
    const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::map<std::string, std::string> stripped;  // VAE name -> raw name
  bool diffusers = false;
  for (const auto& [raw, shape] : shapes) {
    const std::optional<std::string> part = VaePart(raw);
    if (!part) continue;
    stripped[*part] = raw;
    diffusers |= absl::StartsWith(*part, "decoder.up_blocks.") ||
                 absl::StartsWith(*part, "decoder.mid_block.");
  }
  std::set<std::string> vae_names;
  for (const auto& [name, raw] : stripped) vae_names.insert(name);
  if (std::none_of(vae_names.begin(), vae_names.end(),
                   [](const std::string& name) { return absl::StartsWith(name, "decoder."); })) {
    return absl::InvalidArgumentError("VAE: no decoder weights (decoder.*) in the file");
  }
  const int64_t diffusers_levels = CountIndices(vae_names, "decoder.up_blocks.");
  KlVaeKeyMap map;
  std::map<std::string, std::vector<int64_t>> internal_shapes;
  for (const auto& [name, raw] : stripped) {
    const std::optional<std::string> internal =
        diffusers ? FromDiffusers(name, diffusers_levels) : std::optional<std::string>(name);
    if (!internal) continue;  // a weight this VAE does not use
    map.internal_by_raw[raw] = *internal;
    internal_shapes[*internal] = shapes.at(raw);
  }
  std::set<std::string> names;
  for (const auto& [name, shape] : internal_shapes) names.insert(name);

  KlVaeConfig& config = map.config;
  const int64_t levels = CountIndices(names, "decoder.up.");
  config.blocks_per_level = CountIndices(names, "decoder.up.0.block.");
  if (!internal_shapes.contains("decoder.conv_in.weight") || levels == 0 ||
      config.blocks_per_level == 0) {
    return absl::InvalidArgumentError(
        "VAE: not an image VAE's decoder (decoder.conv_in, decoder.up.N.block.M: AutoencoderKL's, "
        "in LDM's or diffusers' names)");
  }
  config.latent_channels = internal_shapes.at("decoder.conv_in.weight")[1];
  config.post_quant_conv = internal_shapes.contains("post_quant_conv.weight");
  // FLUX.2's VAE: its LATENT is the VAE's latent in 2x2 patches, normalised by the batch-norm
  // statistics of those 4 C channels.
  if (internal_shapes.contains("bn.running_mean") || internal_shapes.contains("bn.running_var")) {
    config.latent_patch = 2;
    const std::vector<int64_t> stats = {4 * config.latent_channels};
    for (const char* name : {"bn.running_mean", "bn.running_var"}) {
      if (!internal_shapes.contains(name) || internal_shapes.at(name) != stats) {
        return absl::InvalidArgumentError(
            absl::StrCat("VAE: ", name, " must hold ", stats[0], " values (the latent's ",
                         config.latent_channels, " channels in 2x2 patches)"));
      }
    }
  }
  std::vector<std::string> missing;
  auto need = [&](const std::string& name) {
    if (!internal_shapes.contains(name)) missing.push_back(name);
  };
  auto need_resnet = [&](const std::string& at) {
    for (const char* part : {"norm1", "conv1", "norm2", "conv2"}) {
      need(absl::StrCat(at, ".", part, ".weight"));
      need(absl::StrCat(at, ".", part, ".bias"));
    }
  };
  for (const char* part : {"conv_in", "norm_out", "conv_out"}) {
    need(absl::StrCat("decoder.", part, ".weight"));
    need(absl::StrCat("decoder.", part, ".bias"));
  }
  need_resnet("decoder.mid.block_1");
  need_resnet("decoder.mid.block_2");
  for (const char* part : {"norm", "q", "k", "v", "proj_out"}) {
    need(absl::StrCat("decoder.mid.attn_1.", part, ".weight"));
    need(absl::StrCat("decoder.mid.attn_1.", part, ".bias"));
  }
  for (int64_t level = 0; level < levels; ++level) {
    const std::string at = absl::StrCat("decoder.up.", level, ".block.");
    for (int64_t block = 0; block < config.blocks_per_level; ++block) {
      need_resnet(absl::StrCat(at, block));
    }
    const std::string conv2 = absl::StrCat(at, 0, ".conv2.weight");
    config.level_channels.push_back(internal_shapes.contains(conv2) ? internal_shapes[conv2][0]
                                                                    : 0);
    if (level > 0) {
      need(absl::StrCat("decoder.up.", level, ".upsample.conv.weight"));
      need(absl::StrCat("decoder.up.", level, ".upsample.conv.bias"));
    }
  }
  auto refuse_missing = [&](const char* part) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VAE: the ", part, " is missing ", missing.size(), " weight(s): ",
        absl::StrJoin(missing.begin(), missing.begin() + std::min<size_t>(missing.size(), 5), ", "),
        missing.size() > 5 ? ", ..." : ""));
  };
  if (!missing.empty()) return refuse_missing("decoder");
  // The encoder, where the file has one (a decoder-only file decodes): LDM's num_res_blocks
  // resnets a level (one fewer than the decoder's), a stride-2 downsample below every level but
  // the deepest, the middle, and conv_out to the posterior's mean and log-variance.
  config.encoder = internal_shapes.contains("encoder.conv_in.weight");
  if (config.encoder) {
    for (const char* part : {"conv_in", "norm_out", "conv_out"}) {
      need(absl::StrCat("encoder.", part, ".weight"));
      need(absl::StrCat("encoder.", part, ".bias"));
    }
    need_resnet("encoder.mid.block_1");
    need_resnet("encoder.mid.block_2");
    for (const char* part : {"norm", "q", "k", "v", "proj_out"}) {
      need(absl::StrCat("encoder.mid.attn_1.", part, ".weight"));
      need(absl::StrCat("encoder.mid.attn_1.", part, ".bias"));
    }
    for (int64_t level = 0; level < levels; ++level) {
      for (int64_t block = 0; block + 1 < config.blocks_per_level; ++block) {
        need_resnet(absl::StrCat("encoder.down.", level, ".block.", block));
      }
      if (level + 1 < levels) {
        need(absl::StrCat("encoder.down.", level, ".downsample.conv.weight"));
        need(absl::StrCat("encoder.down.", level, ".downsample.conv.bias"));
      }
    }
    if (config.post_quant_conv) need("quant_conv.weight");
    if (!missing.empty()) return refuse_missing("encoder");
  }
  return map;
}

}  // namespace raylight::models::vae
