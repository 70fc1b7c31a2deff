// umT5 encoder configurations (Wan's text encoder: umT5-XXL) and their detection from a
// checkpoint's weight shapes. Torch-free (the head checks encoder files without libtorch).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models::text {

struct Umt5Config {
  std::string name = "custom";
  int64_t vocab = 256384;
  int64_t dim = 4096;       // d_model
  int64_t num_heads = 64;   // head size dim_attn / num_heads
  int64_t dim_attn = 4096;  // d_kv x num_heads
  int64_t ffn_dim = 10240;  // d_ff (gated GELU: two input projections of this width)
  int64_t num_layers = 24;
  int64_t num_buckets = 32;  // relative-position buckets (bidirectional: half each way)
  int64_t max_distance = 128;
  double eps = 1e-6;
  // umT5 has a relative-position bias in every layer; T5 v1.1 only in the first, shared by all.
  bool bias_per_layer = true;
};

// "umt5-xxl" (Wan 2.1 / 2.2's encoder); NotFound for other names.
absl::StatusOr<Umt5Config> Umt5Preset(const std::string& name);

// The config a checkpoint holds, from its weights' shapes by internal name (umt5_keys.h):
// vocabulary and width from the token embedding, heads from the position-bias table, layers
// from the block count. Errors name what is missing or inconsistent.
absl::StatusOr<Umt5Config> DetectUmt5Config(
    const std::map<std::string, std::vector<int64_t>>& shapes);

}  // namespace raylight::models::text
