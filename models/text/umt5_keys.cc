#include "models/text/umt5_keys.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace raylight::models::text {
namespace {

// Within a block: Hugging Face / ComfyUI suffix <-> official suffix.
constexpr std::pair<absl::string_view, absl::string_view> kBlockNames[] = {
    {"layer.0.SelfAttention.q.weight", "attn.q.weight"},
    {"layer.0.SelfAttention.k.weight", "attn.k.weight"},
    {"layer.0.SelfAttention.v.weight", "attn.v.weight"},
    {"layer.0.SelfAttention.o.weight", "attn.o.weight"},
    {"layer.0.SelfAttention.relative_attention_bias.weight", "pos_embedding.embedding.weight"},
    {"layer.0.layer_norm.weight", "norm1.weight"},
    {"layer.1.DenseReluDense.wi_0.weight", "ffn.gate.0.weight"},  // the GELU branch
    {"layer.1.DenseReluDense.wi_1.weight", "ffn.fc1.weight"},
    {"layer.1.DenseReluDense.wo.weight", "ffn.fc2.weight"},
    {"layer.1.layer_norm.weight", "norm2.weight"},
};

// Prefixes ComfyUI and other tools put before a text encoder's own names.
constexpr absl::string_view kPrefixes[] = {"text_encoders.umt5xxl.transformer.",
                                           "umt5xxl.transformer.", "transformer.", "text_encoder.",
                                           "model."};

// "<digits>.<rest>" -> {index, rest}.
std::optional<std::pair<int64_t, absl::string_view>> SplitIndex(absl::string_view text) {
  const size_t dot = text.find('.');
  int64_t index = 0;
  if (dot == absl::string_view::npos || !absl::SimpleAtoi(text.substr(0, dot), &index) ||
      index < 0) {
    return std::nullopt;
  }
  return std::make_pair(index, text.substr(dot + 1));
}

bool IsOfficialBlockName(absl::string_view rest) {
  for (const auto& [hf, official] : kBlockNames) {
    if (rest == official) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> NormalizeUmt5Key(const std::string& raw) {
  absl::string_view key = raw;
  for (absl::string_view prefix : kPrefixes) {
    if (absl::ConsumePrefix(&key, prefix)) break;
  }
  if (key == "shared.weight" || key == "token_embedding.weight") {
    return std::string("token_embedding.weight");
  }
  if (key == "encoder.final_layer_norm.weight" || key == "norm.weight") {
    return std::string("norm.weight");
  }
  if (absl::ConsumePrefix(&key, "encoder.block.")) {
    auto split = SplitIndex(key);
    if (!split) return std::nullopt;
    for (const auto& [hf, official] : kBlockNames) {
      if (split->second == hf) return absl::StrCat("blocks.", split->first, ".", official);
    }
    return std::nullopt;
  }
  if (absl::ConsumePrefix(&key, "blocks.")) {
    auto split = SplitIndex(key);
    if (!split || !IsOfficialBlockName(split->second)) return std::nullopt;
    return absl::StrCat("blocks.", split->first, ".", split->second);
  }
  return std::nullopt;
}

std::string ToHuggingFaceUmt5Key(const std::string& internal) {
  if (internal == "token_embedding.weight") return "shared.weight";
  if (internal == "norm.weight") return "encoder.final_layer_norm.weight";
  absl::string_view key = internal;
  if (absl::ConsumePrefix(&key, "blocks.")) {
    if (auto split = SplitIndex(key)) {
      for (const auto& [hf, official] : kBlockNames) {
        if (split->second == official) {
          return absl::StrCat("encoder.block.", split->first, ".", hf);
        }
      }
    }
  }
  return internal;
}

std::map<std::string, std::vector<int64_t>> Umt5WeightShapes(const Umt5Config& config) {
  std::map<std::string, std::vector<int64_t>> shapes;
  shapes["token_embedding.weight"] = {config.vocab, config.dim};
  shapes["norm.weight"] = {config.dim};
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string block = absl::StrCat("blocks.", i, ".");
    for (const char* name : {"attn.q.weight", "attn.k.weight", "attn.v.weight"}) {
      shapes[block + name] = {config.dim_attn, config.dim};
    }
    shapes[block + "attn.o.weight"] = {config.dim, config.dim_attn};
    if (config.bias_per_layer || i == 0) {
      shapes[block + "pos_embedding.embedding.weight"] = {config.num_buckets, config.num_heads};
    }
    shapes[block + "norm1.weight"] = {config.dim};
    shapes[block + "norm2.weight"] = {config.dim};
    shapes[block + "ffn.gate.0.weight"] = {config.ffn_dim, config.dim};
    shapes[block + "ffn.fc1.weight"] = {config.ffn_dim, config.dim};
    shapes[block + "ffn.fc2.weight"] = {config.dim, config.ffn_dim};
  }
  return shapes;
}

}  // namespace raylight::models::text
