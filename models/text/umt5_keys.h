// umT5 encoder weight names: Hugging Face's / ComfyUI's (`encoder.block.0.layer.0.SelfAttention.q
// .weight`, `shared.weight`; ComfyUI's umt5_xxl files, with or without a text-encoder prefix) and
// the official Wan code's (`blocks.0.attn.q.weight`, `token_embedding.weight`) mapped to one
// internal naming, the official one. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/text/umt5_config.h"

namespace raylight::models::text {

// Any spelling -> internal name; nullopt for keys that are not encoder weights (a decoder's,
// `spiece_model`, the tied `encoder.embed_tokens.weight` copy of `shared.weight`).
std::optional<std::string> NormalizeUmt5Key(const std::string& raw);

// Internal name -> Hugging Face / ComfyUI spelling (tests write both).
std::string ToHuggingFaceUmt5Key(const std::string& internal);

// Every weight `config` needs, internal name -> shape.
std::map<std::string, std::vector<int64_t>> Umt5WeightShapes(const Umt5Config& config);

}  // namespace raylight::models::text
