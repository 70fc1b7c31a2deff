#include "models/vision/clip_vision.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/checkpoint.h"

namespace raylight::models::vision {
namespace {

using at::Tensor;

// CLIP's pixel normalisation (OpenAI's statistics, which LAION's towers kept).
constexpr double kMean[3] = {0.48145466, 0.4578275, 0.40821073};
constexpr double kStd[3] = {0.26862954, 0.26130258, 0.27577711};

}  // namespace

absl::StatusOr<std::unique_ptr<ClipVision>> ClipVision::FromWeights(
    const ClipVisionConfig& config, const std::map<std::string, at::Tensor>& weights,
    const ClipVisionOptions& options) {
  std::map<std::string, Tensor> placed;
  for (const auto& [name, shape] : ClipVisionWeightShapes(config)) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      return absl::InvalidArgumentError(absl::StrCat("CLIP vision: missing weight ", name));
    }
    if (it->second.sizes().vec() != shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CLIP vision: ", name, " has shape [", absl::StrJoin(it->second.sizes(), ", "),
          "], expected [", absl::StrJoin(shape, ", "), "]"));
    }
    placed[name] = it->second.to(options.device, options.dtype).contiguous();
  }
  return std::unique_ptr<ClipVision>(new ClipVision(config, options, std::move(placed)));
}

absl::StatusOr<std::unique_ptr<ClipVision>> ClipVision::Load(const std::vector<std::string>& paths,
                                                             const ClipVisionOptions& options) {
  absl::StatusOr<Checkpoint> checkpoint = OpenCheckpoint(paths, NormalizeClipVisionKey);
  if (!checkpoint.ok()) return checkpoint.status();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, tensor] : checkpoint->tensors) shapes[name] = tensor.value_shape();
  absl::StatusOr<ClipVisionConfig> config = DetectClipVisionConfig(shapes, options.heads);
  if (!config.ok()) return config.status();
  std::map<std::string, Tensor> weights;
  try {
    for (const auto& [name, tensor] : checkpoint->tensors) {
      weights[name] = Materialize(tensor, options.dtype, options.device);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("CLIP vision: ", e.what_without_backtrace()));
  }
  return FromWeights(*config, weights, options);
}

int64_t ClipVision::bytes() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : weights_) total += tensor.nbytes();
  return total;
}

absl::StatusOr<at::Tensor> ClipVision::Preprocess(const at::Tensor& image_in, bool crop) const {
  const Tensor image = image_in.dim() == 3 ? image_in.unsqueeze(0) : image_in;
  if (image.dim() != 4 || image.size(3) < 3 || image.size(1) < 1 || image.size(2) < 1) {
    return absl::InvalidArgumentError(absl::StrCat("image: expected [B, H, W, 3], got [",
                                                   absl::StrJoin(image_in.sizes(), ", "), "]"));
  }
  try {
    const int64_t size = config_.image_size;
    Tensor x = image.narrow(3, 0, 3).to(options_.device, at::kFloat).permute({0, 3, 1, 2});
    const int64_t h = x.size(2), w = x.size(3);
    if (h != size || w != size) {
      std::vector<int64_t> scaled = {size, size};
      if (crop) {
        // Python's round(): to nearest, ties to even (nearbyint in the default rounding mode).
        const double scale = static_cast<double>(size) / static_cast<double>(std::min(h, w));
        scaled = {static_cast<int64_t>(std::nearbyint(scale * h)),
                  static_cast<int64_t>(std::nearbyint(scale * w))};
      }
      x = at::_upsample_bicubic2d_aa(x.contiguous(), scaled, /*align_corners=*/false);
      const int64_t top = (x.size(2) - size) / 2, left = (x.size(3) - size) / 2;
      x = x.narrow(2, top, size).narrow(3, left, size);
    }
    x = (x * 255.0).clamp(0, 255).round() / 255.0;
    const Tensor mean =
        at::tensor(std::vector<double>(kMean, kMean + 3), x.options()).view({3, 1, 1});
    const Tensor std = at::tensor(std::vector<double>(kStd, kStd + 3), x.options()).view({3, 1, 1});
    return ((x - mean) / std).contiguous();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("CLIP vision: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<ClipVisionOutput> ClipVision::Encode(const at::Tensor& pixels) const {
  const int64_t size = config_.image_size;
  if (pixels.dim() != 4 || pixels.size(1) != 3 || pixels.size(2) != size ||
      pixels.size(3) != size) {
    return absl::InvalidArgumentError(absl::StrCat("pixels: expected [B, 3, ", size, ", ", size,
                                                   "], got [", absl::StrJoin(pixels.sizes(), ", "),
                                                   "]"));
  }
  try {
    const int64_t d = config_.width, heads = config_.heads;
    const double eps = config_.eps;
    auto norm = [&](const Tensor& x, const std::string& name) {
      return at::layer_norm(x, {d}, W(name + ".weight"), W(name + ".bias"), eps);
    };
    auto linear = [&](const Tensor& x, const std::string& name) {
      return at::linear(x, W(name + ".weight"), W(name + ".bias"));
    };
    const Tensor input = pixels.to(options_.device, options_.dtype);
    const int64_t batch = input.size(0);
    Tensor x = at::conv2d(input, W("embeddings.patch_embedding.weight"), {},
                          at::IntArrayRef{config_.patch, config_.patch})
                   .flatten(2)
                   .transpose(1, 2);
    x = at::cat({W("embeddings.class_embedding").expand({batch, 1, d}), x}, 1) +
        W("embeddings.position_embedding.weight");
    x = norm(x, "pre_layrnorm");
    ClipVisionOutput out;
    const int64_t tokens = x.size(1);
    for (int64_t i = 0; i < config_.layers; ++i) {
      const std::string layer = absl::StrCat("encoder.layers.", i, ".");
      const Tensor h = norm(x, layer + "layer_norm1");
      auto split = [&](const Tensor& t) {
        return t.view({batch, tokens, heads, d / heads}).transpose(1, 2);
      };
      const Tensor attention =
          at::scaled_dot_product_attention(split(linear(h, layer + "self_attn.q_proj")),
                                           split(linear(h, layer + "self_attn.k_proj")),
                                           split(linear(h, layer + "self_attn.v_proj")));
      x = x + linear(attention.transpose(1, 2).reshape({batch, tokens, d}),
                     layer + "self_attn.out_proj");
      Tensor m = linear(norm(x, layer + "layer_norm2"), layer + "mlp.fc1");
      m = config_.activation == "quick_gelu" ? m * at::sigmoid(1.702 * m) : at::gelu(m);
      x = x + linear(m, layer + "mlp.fc2");
      if (i == config_.layers - 2) out.penultimate = x.to(at::kFloat);
    }
    out.last_hidden = x.to(at::kFloat);
    if (config_.layers < 2) out.penultimate = out.last_hidden;
    if (config_.projection > 0) {
      const Tensor pooled = norm(x.select(1, 0), "post_layernorm");
      out.image_embeds = at::linear(pooled, W("visual_projection.weight")).to(at::kFloat);
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("CLIP vision: ", e.what_without_backtrace()));
  }
}

}  // namespace raylight::models::vision
