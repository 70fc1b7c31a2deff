// A CLIP vision transformer (Wan 2.1 I2V / FLF2V's image encoder, ViT-H/14) as ComfyUI's
// CLIPVisionEncode runs it: ComfyUI's clip_preprocess (shortest side to 224 by antialiased
// bicubic, centre crop, 8-bit rounding, CLIP's mean and std; or a plain resize to 224 x 224,
// the official Wan code's, without the crop), the embeddings, pre-norm layers, and the
// penultimate layer's hidden states [B, 257, 1280]: what Wan's `clip_fea` is.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/vision/clip_vision_config.h"

namespace raylight::models::vision {

struct ClipVisionOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  int64_t heads = 0;  // 0: by width (clip_vision_config.h)
};

struct ClipVisionOutput {
  at::Tensor last_hidden;   // [B, T, width]
  at::Tensor penultimate;   // [B, T, width]: the second-to-last layer's output
  at::Tensor image_embeds;  // [B, projection] (post-norm class token, projected), or undefined
};

class ClipVision {
 public:
  // Safetensors files with transformers' / ComfyUI's names (clip_vision_h.safetensors).
  static absl::StatusOr<std::unique_ptr<ClipVision>> Load(const std::vector<std::string>& paths,
                                                          const ClipVisionOptions& options);
  static absl::StatusOr<std::unique_ptr<ClipVision>> FromWeights(
      const ClipVisionConfig& config, const std::map<std::string, at::Tensor>& weights,
      const ClipVisionOptions& options);

  const ClipVisionConfig& config() const { return config_; }
  int64_t bytes() const;  // the weights' bytes

  // image [B, H, W, 3] (ComfyUI's IMAGE: float in [0, 1]) -> pixels [B, 3, S, S], float32, on
  // the encoder's device. `crop`: ComfyUI's default; false: resized to S x S whatever the aspect.
  absl::StatusOr<at::Tensor> Preprocess(const at::Tensor& image, bool crop = true) const;
  // pixels [B, 3, S, S] -> the hidden states (float32).
  absl::StatusOr<ClipVisionOutput> Encode(const at::Tensor& pixels) const;

 private:
  ClipVision(ClipVisionConfig config, ClipVisionOptions options,
             std::map<std::string, at::Tensor> weights)
      : config_(std::move(config)), options_(options), weights_(std::move(weights)) {}
  const at::Tensor& W(const std::string& name) const { return weights_.at(name); }

  ClipVisionConfig config_;
  ClipVisionOptions options_;
  std::map<std::string, at::Tensor> weights_;
};

}  // namespace raylight::models::vision
