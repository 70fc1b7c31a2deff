#include "models/flux/flux_config.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raylight::models::flux {
namespace {

std::vector<FluxConfig> Presets() {
  FluxConfig dev;
  dev.name = "flux1-dev";
  FluxConfig schnell = dev;
  schnell.name = "flux1-schnell";
  schnell.guidance_embed = false;
  // Test sizes: 4 heads (Ulysses 2 and 4 divide) of 32 (RoPE 4 / 14 / 14), narrow text.
  FluxConfig tiny;
  tiny.name = "tiny-flux-dev";
  tiny.hidden = 128;
  tiny.num_heads = 4;
  tiny.depth = 2;
  tiny.depth_single = 2;
  tiny.mlp_hidden = 4 * tiny.hidden;
  tiny.context_dim = 48;
  tiny.vec_dim = 24;
  tiny.axes_dim = {4, 14, 14};
  FluxConfig tiny_schnell = tiny;
  tiny_schnell.name = "tiny-flux-schnell";
  tiny_schnell.guidance_embed = false;
  return {dev, schnell, tiny, tiny_schnell};
}

int64_t Linear(int64_t in, int64_t out, bool bias = true) { return in * out + (bias ? out : 0); }

}  // namespace

int64_t FluxConfig::DoubleBlockParameterCount() const {
  const bool own_modulation = !chroma() && !shared_modulation;
  const int64_t stream = (own_modulation ? Linear(hidden, 6 * hidden) : 0) +
                         Linear(hidden, 3 * hidden, bias) + 2 * head_dim() +
                         Linear(hidden, hidden, bias) + Linear(hidden, mlp_in(), bias) +
                         Linear(mlp_hidden, hidden, bias);
  return 2 * stream;
}

int64_t FluxConfig::SingleBlockParameterCount() const {
  const bool own_modulation = !chroma() && !shared_modulation;
  return Linear(hidden, 3 * hidden + mlp_in(), bias) + Linear(hidden + mlp_hidden, hidden, bias) +
         2 * head_dim() + (own_modulation ? Linear(hidden, 3 * hidden) : 0);
}

int64_t FluxConfig::ParameterCount() const {
  int64_t globals = Linear(in_channels(), hidden, bias) + Linear(context_dim, hidden, bias) +
                    Linear(hidden, patch * patch * latent_channels, bias);
  if (chroma()) {
    const int64_t a = approximator_hidden;
    globals += Linear(64, a) + approximator_layers * (2 * Linear(a, a) + a) + Linear(a, hidden);
  } else {
    globals +=
        Linear(256, hidden, bias) + Linear(hidden, hidden, bias) + Linear(hidden, 2 * hidden, bias);
  }
  if (shared_modulation) globals += Linear(hidden, 15 * hidden, false);
  if (vec_dim > 0) globals += Linear(vec_dim, hidden) + Linear(hidden, hidden);
  if (guidance_embed) globals += Linear(256, hidden, bias) + Linear(hidden, hidden, bias);
  if (text_norm) globals += context_dim;
  return globals + depth * DoubleBlockParameterCount() + depth_single * SingleBlockParameterCount();
}

absl::Status FluxConfig::Validate() const {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("flux config ", name, ": ", what));
  };
  if (hidden <= 0 || num_heads <= 0 || hidden % num_heads != 0) {
    return bad(absl::StrCat(num_heads, " heads do not divide hidden ", hidden));
  }
  if (depth < 0 || depth_single < 0 || depth + depth_single == 0) return bad("no blocks");
  if (latent_channels <= 0 || patch <= 0 || mlp_hidden <= 0 || context_dim <= 0 || vec_dim < 0) {
    return bad("sizes must be positive");
  }
  if (std::accumulate(axes_dim.begin(), axes_dim.end(), int64_t{0}) != head_dim()) {
    return bad(absl::StrCat("RoPE axes ", absl::StrJoin(axes_dim, "+"), " do not sum to head_dim ",
                            head_dim()));
  }
  for (int64_t axis : axes_dim) {
    if (axis <= 0 || axis % 2 != 0) return bad("RoPE axis widths must be even and positive");
  }
  return absl::OkStatus();
}

bool FluxConfig::SameArchitecture(const FluxConfig& o) const {
  return latent_channels == o.latent_channels && patch == o.patch && hidden == o.hidden &&
         num_heads == o.num_heads && depth == o.depth && depth_single == o.depth_single &&
         mlp_hidden == o.mlp_hidden && context_dim == o.context_dim && vec_dim == o.vec_dim &&
         guidance_embed == o.guidance_embed && axes_dim == o.axes_dim && theta == o.theta &&
         text_norm == o.text_norm && positions == o.positions &&
         time_scaled_last == o.time_scaled_last && approximator_hidden == o.approximator_hidden &&
         approximator_layers == o.approximator_layers && modulation_rows == o.modulation_rows &&
         shared_modulation == o.shared_modulation && swiglu == o.swiglu && bias == o.bias;
}

absl::StatusOr<FluxConfig> FluxPreset(const std::string& name) {
  for (const FluxConfig& c : Presets()) {
    if (c.name == name) return c;
  }
  return absl::NotFoundError(
      absl::StrCat("no Flux preset '", name, "'; known: ", absl::StrJoin(FluxPresetNames(), ", ")));
}

std::vector<std::string> FluxPresetNames() {
  std::vector<std::string> names;
  for (const FluxConfig& c : Presets()) names.push_back(c.name);
  return names;
}

absl::StatusOr<std::vector<int64_t>> FluxAxesFor(int64_t head_dim) {
  const int64_t index = head_dim / 8, spatial = 7 * head_dim / 16;
  if (head_dim % 32 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("flux: no RoPE split for head_dim ", head_dim,
                     " (Flux's 1/8, 7/16, 7/16 needs a multiple of 32)"));
  }
  return std::vector<int64_t>{index, spatial, spatial};
}

}  // namespace raylight::models::flux
