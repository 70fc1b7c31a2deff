#include "models/text/umt5_model.h"

#include <cmath>
#include <limits>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raylight::models::text {
namespace {

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight.to(at::kFloat) * (x * at::rsqrt(variance + eps));
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight) {
  return at::linear(x.to(weight.scalar_type()), weight);
}

// One encoder layer on the float32 residual stream `x` [B, L, dim]; `bias` [B or 1, H, L, L]
// (position bias plus mask, float32).
at::Tensor Layer(const WeightSet& w, const Umt5Config& config, const at::Tensor& x,
                 const at::Tensor& bias) {
  const int64_t batch = x.size(0), length = x.size(1);
  const int64_t head_dim = config.dim_attn / config.num_heads;
  const at::Tensor h = RmsNorm(x, w.Get("norm1.weight"), config.eps);
  const auto heads = [&](const char* name) {
    return Linear(h, w.Get(name)).view({batch, length, config.num_heads, head_dim}).transpose(1, 2);
  };
  const at::Tensor q = heads("attn.q.weight");
  const at::Tensor k = heads("attn.k.weight");
  const at::Tensor v = heads("attn.v.weight");
  // T5 folds 1/sqrt(d) into its initialisation: scores are plain q.k.
  const at::Tensor attended = at::scaled_dot_product_attention(
      q, k, v, bias.to(q.scalar_type()), /*dropout_p=*/0.0, /*is_causal=*/false, /*scale=*/1.0);
  const at::Tensor merged = attended.transpose(1, 2).reshape({batch, length, config.dim_attn});
  at::Tensor out = x + Linear(merged, w.Get("attn.o.weight")).to(at::kFloat);
  const at::Tensor g = RmsNorm(out, w.Get("norm2.weight"), config.eps);
  const at::Tensor gated =
      at::gelu(Linear(g, w.Get("ffn.gate.0.weight")), "tanh") * Linear(g, w.Get("ffn.fc1.weight"));
  out += Linear(gated, w.Get("ffn.fc2.weight")).to(at::kFloat);
  return out;
}

// The layer's position bias [1, H, L, L] from its bucket table [buckets, H].
at::Tensor PositionBias(const at::Tensor& table, const at::Tensor& buckets) {
  return at::embedding(table.to(at::kFloat), buckets).permute({2, 0, 1}).unsqueeze(0);
}

}  // namespace

at::Tensor RelativePositionBuckets(int64_t length, const Umt5Config& config, at::Device device) {
  const auto options = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor positions = at::arange(length, options);
  at::Tensor relative = positions.unsqueeze(0) - positions.unsqueeze(1);  // key - query
  // Bidirectional: half the buckets for keys after the query.
  const int64_t half = config.num_buckets / 2;
  at::Tensor buckets = (relative > 0).to(at::kLong) * half;
  relative = relative.abs();
  const int64_t max_exact = half / 2;
  // The same float32 operations as transformers and Wan (log, divide by a double, scale), so that
  // offsets on a bucket boundary fall in the same bucket.
  at::Tensor large = max_exact + (at::log(relative.to(at::kFloat) / max_exact) /
                                  std::log(static_cast<double>(config.max_distance) / max_exact) *
                                  (half - max_exact))
                                     .to(at::kLong);
  large = at::minimum(large, at::full_like(large, half - 1));
  return buckets + at::where(relative < max_exact, relative, large);
}

absl::StatusOr<at::Tensor> Umt5Forward(WeightProvider& weights, const Umt5Config& config,
                                       const at::Tensor& ids, const at::Tensor& mask) {
  if (ids.dim() != 2 || !mask.sizes().equals(ids.sizes())) {
    return absl::InvalidArgumentError(
        absl::StrCat("umT5: ids [", absl::StrJoin(ids.sizes(), ", "), "] and mask [",
                     absl::StrJoin(mask.sizes(), ", "), "] must both be [batch, tokens]"));
  }
  if (weights.num_blocks() != config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umT5: ", weights.num_blocks(), " blocks placed for ", config.num_layers, " layers"));
  }
  try {
    const at::Device device = weights.device();
    const at::Tensor tokens = ids.to(device, at::kLong);
    const at::Tensor& embedding = weights.globals().Get("token_embedding.weight");
    // The id range in one read back from the device.
    at::Tensor range = at::zeros({2}, at::kLong);
    if (tokens.numel() > 0) {
      const auto [low, high] = at::aminmax(tokens);
      range = at::stack({low, high}).cpu();
    }
    if (range[0].item<int64_t>() < 0 || range[1].item<int64_t>() >= embedding.size(0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("umT5: token ids outside the vocabulary of ", embedding.size(0)));
    }
    at::Tensor x = at::embedding(embedding, tokens).to(at::kFloat);
    const int64_t length = ids.size(1);
    const at::Tensor buckets = RelativePositionBuckets(length, config, device);
    // Masked keys: the most negative float, as transformers and ComfyUI add it.
    const at::Tensor key_mask =
        at::where(mask.to(device).eq(0), -std::numeric_limits<float>::max(), 0.0f)
            .to(at::kFloat)
            .view({ids.size(0), 1, 1, length});
    at::Tensor shared_bias;
    for (int i = 0; i < config.num_layers; ++i) {
      if (i + 1 < config.num_layers) weights.Prefetch(i + 1);
      auto block = weights.Acquire(i);
      if (!block.ok()) return block.status();
      absl::Cleanup release = [&] { weights.Release(i); };
      const WeightSet& w = **block;
      at::Tensor bias;
      if (config.bias_per_layer || i == 0) {
        bias = PositionBias(w.Get("pos_embedding.embedding.weight"), buckets);
        if (!config.bias_per_layer) shared_bias = bias;
      } else {
        bias = shared_bias;
      }
      x = Layer(w, config, x, bias + key_mask);
    }
    return RmsNorm(x, weights.globals().Get("norm.weight"), config.eps);
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("umT5 forward: ", error.what_without_backtrace()));
  }
}

}  // namespace raylight::models::text
