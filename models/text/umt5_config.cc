#include "models/text/umt5_config.h"

#include "absl/strings/str_cat.h"

namespace raylight::models::text {
namespace {

absl::StatusOr<std::vector<int64_t>> ShapeOf(
    const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& name,
    size_t rank) {
  auto it = shapes.find(name);
  if (it == shapes.end()) {
    return absl::InvalidArgumentError(absl::StrCat("umT5 checkpoint: no ", name));
  }
  if (it->second.size() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("umT5 checkpoint: ", name, " has ", it->second.size(), " dims, not ", rank));
  }
  return it->second;
}

}  // namespace

absl::StatusOr<Umt5Config> Umt5Preset(const std::string& name) {
  if (name == "umt5-xxl") {
    Umt5Config config;
    config.name = name;
    return config;
  }
  return absl::NotFoundError(absl::StrCat("no umT5 preset named '", name, "' (have: umt5-xxl)"));
}

absl::StatusOr<Umt5Config> DetectUmt5Config(
    const std::map<std::string, std::vector<int64_t>>& shapes) {
  Umt5Config config;
  auto embedding = ShapeOf(shapes, "token_embedding.weight", 2);
  if (!embedding.ok()) return embedding.status();
  config.vocab = (*embedding)[0];
  config.dim = (*embedding)[1];
  int64_t layers = 0;
  while (shapes.contains(absl::StrCat("blocks.", layers, ".attn.q.weight"))) ++layers;
  if (layers == 0) return absl::InvalidArgumentError("umT5 checkpoint: no blocks.0.attn.q.weight");
  config.num_layers = layers;
  auto bias = ShapeOf(shapes, "blocks.0.pos_embedding.embedding.weight", 2);
  if (!bias.ok()) return bias.status();
  config.num_buckets = (*bias)[0];
  config.num_heads = (*bias)[1];
  config.bias_per_layer = layers == 1 || shapes.contains("blocks.1.pos_embedding.embedding.weight");
  auto q = ShapeOf(shapes, "blocks.0.attn.q.weight", 2);
  if (!q.ok()) return q.status();
  config.dim_attn = (*q)[0];
  auto gate = ShapeOf(shapes, "blocks.0.ffn.gate.0.weight", 2);
  if (!gate.ok()) return gate.status();
  config.ffn_dim = (*gate)[0];
  if (config.num_heads <= 0 || config.dim_attn % config.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("umT5 checkpoint: ", config.dim_attn,
                                                   " attention channels over ", config.num_heads,
                                                   " heads"));
  }
  const Umt5Config xxl = *Umt5Preset("umt5-xxl");
  if (config.vocab == xxl.vocab && config.dim == xxl.dim && config.num_heads == xxl.num_heads &&
      config.ffn_dim == xxl.ffn_dim && config.num_layers == xxl.num_layers &&
      config.bias_per_layer) {
    config.name = xxl.name;
  }
  return config;
}

}  // namespace raylight::models::text
