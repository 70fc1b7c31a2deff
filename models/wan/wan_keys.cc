#include "models/wan/wan_keys.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/model_prefix.h"

namespace raylight::models::wan {
namespace {

// diffusers -> official, for names outside the blocks (whole-prefix replacements).
const std::vector<std::pair<std::string, std::string>>& GlobalRenames() {
  static const auto* renames = new std::vector<std::pair<std::string, std::string>>{
      {"condition_embedder.time_embedder.linear_1.", "time_embedding.0."},
      {"condition_embedder.time_embedder.linear_2.", "time_embedding.2."},
      {"condition_embedder.time_proj.", "time_projection.1."},
      {"condition_embedder.text_embedder.linear_1.", "text_embedding.0."},
      {"condition_embedder.text_embedder.linear_2.", "text_embedding.2."},
      {"condition_embedder.image_embedder.norm1.", "img_emb.proj.0."},
      {"condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."},
      {"condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."},
      {"condition_embedder.image_embedder.norm2.", "img_emb.proj.4."},
      {"condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"},
      {"proj_out.", "head.head."},
  };
  return *renames;
}

// diffusers -> official, inside "blocks.N." (replacements of the leading module path).
const std::vector<std::pair<std::string, std::string>>& BlockRenames() {
  static const auto* renames = new std::vector<std::pair<std::string, std::string>>{
      {"attn1.to_out.0.", "self_attn.o."},
      {"attn1.to_q.", "self_attn.q."},
      {"attn1.to_k.", "self_attn.k."},
      {"attn1.to_v.", "self_attn.v."},
      {"attn1.norm_q.", "self_attn.norm_q."},
      {"attn1.norm_k.", "self_attn.norm_k."},
      {"attn2.to_out.0.", "cross_attn.o."},
      {"attn2.to_q.", "cross_attn.q."},
      {"attn2.to_k.", "cross_attn.k."},
      {"attn2.to_v.", "cross_attn.v."},
      {"attn2.norm_q.", "cross_attn.norm_q."},
      {"attn2.norm_k.", "cross_attn.norm_k."},
      {"attn2.add_k_proj.", "cross_attn.k_img."},
      {"attn2.add_v_proj.", "cross_attn.v_img."},
      {"attn2.norm_added_k.", "cross_attn.norm_k_img."},
      {"norm2.", "norm3."},
      {"ffn.net.0.proj.", "ffn.0."},
      {"ffn.net.2.", "ffn.2."},
  };
  return *renames;
}

// "blocks.<n>.<rest>" -> (n, rest).
bool SplitBlock(const std::string& key, int* index, std::string* rest) {
  if (!absl::StartsWith(key, "blocks.")) return false;
  const size_t dot = key.find('.', 7);
  if (dot == std::string::npos) return false;
  if (!absl::SimpleAtoi(key.substr(7, dot - 7), index) || *index < 0) return false;
  *rest = key.substr(dot + 1);
  return true;
}

const std::vector<std::string>& OfficialBlockLeaves() {
  static const auto* leaves = new std::vector<std::string>{"modulation",
                                                           "norm3.weight",
                                                           "norm3.bias",
                                                           "ffn.0.weight",
                                                           "ffn.0.bias",
                                                           "ffn.2.weight",
                                                           "ffn.2.bias",
                                                           "self_attn.norm_q.weight",
                                                           "self_attn.norm_k.weight",
                                                           "cross_attn.norm_q.weight",
                                                           "cross_attn.norm_k.weight",
                                                           "cross_attn.norm_k_img.weight",
                                                           "cross_attn.k_img.weight",
                                                           "cross_attn.k_img.bias",
                                                           "cross_attn.v_img.weight",
                                                           "cross_attn.v_img.bias"};
  return *leaves;
}

bool IsOfficialBlockLeaf(const std::string& rest) {
  for (const std::string& leaf : OfficialBlockLeaves()) {
    if (rest == leaf) return true;
  }
  for (const char* attn : {"self_attn.", "cross_attn."}) {
    for (const char* proj : {"q.", "k.", "v.", "o."}) {
      for (const char* param : {"weight", "bias"}) {
        if (rest == absl::StrCat(attn, proj, param)) return true;
      }
    }
  }
  return false;
}

bool IsOfficialGlobal(const std::string& key) {
  static const std::vector<std::string>* names = [] {
    auto* v = new std::vector<std::string>{"head.modulation", "img_emb.emb_pos"};
    for (const char* module :
         {"patch_embedding", "text_embedding.0", "text_embedding.2", "time_embedding.0",
          "time_embedding.2", "time_projection.1", "head.head", "img_emb.proj.0", "img_emb.proj.1",
          "img_emb.proj.3", "img_emb.proj.4"}) {
      v->push_back(absl::StrCat(module, ".weight"));
      v->push_back(absl::StrCat(module, ".bias"));
    }
    return v;
  }();
  for (const std::string& name : *names) {
    if (key == name) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> NormalizeWanKey(const std::string& raw) {
  const std::string key = StripModelPrefix(raw);
  int index = 0;
  std::string rest;
  if (SplitBlock(key, &index, &rest)) {
    if (rest == "scale_shift_table") rest = "modulation";
    for (const auto& [from, to] : BlockRenames()) {
      if (absl::StartsWith(rest, from)) {
        rest = to + rest.substr(from.size());
        break;
      }
    }
    if (!IsOfficialBlockLeaf(rest)) return std::nullopt;
    return absl::StrCat("blocks.", index, ".", rest);
  }
  std::string name = key;
  if (name == "scale_shift_table") name = "head.modulation";
  for (const auto& [from, to] : GlobalRenames()) {
    if (absl::StartsWith(name, from)) {
      name = to + name.substr(from.size());
      break;
    }
  }
  if (!IsOfficialGlobal(name)) return std::nullopt;
  return name;
}

std::string ToDiffusersKey(const std::string& internal) {
  int index = 0;
  std::string rest;
  if (SplitBlock(internal, &index, &rest)) {
    if (rest == "modulation") return absl::StrCat("blocks.", index, ".scale_shift_table");
    for (const auto& [from, to] : BlockRenames()) {
      if (absl::StartsWith(rest, to))
        return absl::StrCat("blocks.", index, ".", from, rest.substr(to.size()));
    }
    return internal;
  }
  if (internal == "head.modulation") return "scale_shift_table";
  for (const auto& [from, to] : GlobalRenames()) {
    if (absl::StartsWith(internal, to)) return from + internal.substr(to.size());
  }
  return internal;
}

std::map<std::string, std::vector<int64_t>> WanWeightShapes(const WanConfig& c) {
  std::map<std::string, std::vector<int64_t>> shapes;
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    shapes[name + ".weight"] = {out, in};
    shapes[name + ".bias"] = {out};
  };
  shapes["patch_embedding.weight"] = {c.dim, c.in_channels, c.patch_t, c.patch_h, c.patch_w};
  shapes["patch_embedding.bias"] = {c.dim};
  linear("text_embedding.0", c.text_dim, c.dim);
  linear("text_embedding.2", c.dim, c.dim);
  linear("time_embedding.0", c.freq_dim, c.dim);
  linear("time_embedding.2", c.dim, c.dim);
  linear("time_projection.1", c.dim, 6 * c.dim);
  linear("head.head", c.dim, c.out_channels * c.patch_t * c.patch_h * c.patch_w);
  shapes["head.modulation"] = {1, 2, c.dim};
  if (c.i2v()) {
    shapes["img_emb.proj.0.weight"] = {c.image_dim};
    shapes["img_emb.proj.0.bias"] = {c.image_dim};
    linear("img_emb.proj.1", c.image_dim, c.image_dim);
    linear("img_emb.proj.3", c.image_dim, c.dim);
    shapes["img_emb.proj.4.weight"] = {c.dim};
    shapes["img_emb.proj.4.bias"] = {c.dim};
    if (c.flf_pos_tokens > 0) shapes["img_emb.emb_pos"] = {1, c.flf_pos_tokens, c.image_dim};
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = absl::StrCat("blocks.", i, ".");
    shapes[b + "modulation"] = {1, 6, c.dim};
    for (const char* attn : {"self_attn", "cross_attn"}) {
      for (const char* proj : {"q", "k", "v", "o"})
        linear(absl::StrCat(b, attn, ".", proj), c.dim, c.dim);
      shapes[absl::StrCat(b, attn, ".norm_q.weight")] = {c.dim};
      shapes[absl::StrCat(b, attn, ".norm_k.weight")] = {c.dim};
    }
    if (c.i2v()) {
      linear(b + "cross_attn.k_img", c.dim, c.dim);
      linear(b + "cross_attn.v_img", c.dim, c.dim);
      shapes[b + "cross_attn.norm_k_img.weight"] = {c.dim};
    }
    shapes[b + "norm3.weight"] = {c.dim};
    shapes[b + "norm3.bias"] = {c.dim};
    linear(b + "ffn.0", c.dim, c.ffn_dim);
    linear(b + "ffn.2", c.ffn_dim, c.dim);
  }
  return shapes;
}

absl::StatusOr<WanConfig> DetectWanConfig(const WanKeyShapes& checkpoint) {
  auto shape_of = [&](const std::string& name) -> const std::vector<int64_t>* {
    auto it = checkpoint.shapes.find(name);
    return it == checkpoint.shapes.end() ? nullptr : &it->second;
  };
  const std::vector<int64_t>* patch = shape_of("patch_embedding.weight");
  const std::vector<int64_t>* text = shape_of("text_embedding.0.weight");
  const std::vector<int64_t>* ffn = shape_of("blocks.0.ffn.0.weight");
  const std::vector<int64_t>* head = shape_of("head.head.weight");
  const std::vector<int64_t>* time = shape_of("time_embedding.0.weight");
  std::vector<std::string> missing;
  for (auto [name, tensor] :
       {std::pair{"patch_embedding.weight", patch}, std::pair{"text_embedding.0.weight", text},
        std::pair{"blocks.0.ffn.0.weight", ffn}, std::pair{"head.head.weight", head},
        std::pair{"time_embedding.0.weight", time}}) {
    if (tensor == nullptr) missing.push_back(name);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a Wan transformer checkpoint (missing ", absl::StrJoin(missing, ", "), "; ",
        checkpoint.shapes.size(), " Wan keys and ", checkpoint.unknown_keys.size(),
        " other keys found", checkpoint.unknown_keys.empty() ? "" : ", e.g. '",
        checkpoint.unknown_keys.empty() ? "" : checkpoint.unknown_keys.front(),
        checkpoint.unknown_keys.empty() ? "" : "'", ")"));
  }
  if (patch->size() != 5 || text->size() != 2 || ffn->size() != 2 || head->size() != 2 ||
      time->size() != 2) {
    return absl::InvalidArgumentError("Wan checkpoint: embedding weights have unexpected ranks");
  }
  WanConfig c;
  c.dim = (*patch)[0];
  c.in_channels = (*patch)[1];
  c.patch_t = (*patch)[2];
  c.patch_h = (*patch)[3];
  c.patch_w = (*patch)[4];
  c.text_dim = (*text)[1];
  c.ffn_dim = (*ffn)[0];
  c.freq_dim = (*time)[1];
  const int64_t patch_volume = c.patch_t * c.patch_h * c.patch_w;
  c.out_channels = (*head)[0] / std::max<int64_t>(patch_volume, 1);
  c.family = checkpoint.shapes.count("img_emb.proj.1.weight") ? WanFamily::kI2V
             : c.in_channels == 48                            ? WanFamily::kTI2V
                                                              : WanFamily::kT2V;
  if (c.i2v()) c.image_dim = checkpoint.shapes.at("img_emb.proj.1.weight")[1];
  if (auto it = checkpoint.shapes.find("img_emb.emb_pos");
      c.i2v() && it != checkpoint.shapes.end() && it->second.size() == 3) {
    c.flf_pos_tokens = it->second[1];
    c.image_tokens = c.flf_pos_tokens / 2;
  }
  int64_t layers = 0;
  while (checkpoint.shapes.count(absl::StrCat("blocks.", layers, ".modulation"))) ++layers;
  c.num_layers = layers;

  c.name = "custom";
  c.num_heads = c.dim % 128 == 0 ? c.dim / 128 : 1;
  for (const std::string& name : WanPresetNames()) {
    WanConfig preset = *WanPreset(name);
    if (preset.dim == c.dim && preset.ffn_dim == c.ffn_dim && preset.in_channels == c.in_channels &&
        preset.family == c.family && preset.text_dim == c.text_dim &&
        preset.flf_pos_tokens == c.flf_pos_tokens && layers <= preset.num_layers) {
      c.name = name;
      c.num_heads = preset.num_heads;
      c.text_len = preset.text_len;
      c.image_tokens = preset.image_tokens;
      break;
    }
  }
  if (auto it = checkpoint.metadata.find("num_heads"); it != checkpoint.metadata.end()) {
    int64_t heads = 0;
    if (!absl::SimpleAtoi(it->second, &heads) || heads <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Wan checkpoint metadata: num_heads '", it->second, "' is not a count"));
    }
    c.num_heads = heads;
  }
  if (auto status = c.Validate(); !status.ok()) return status;
  return c;
}

}  // namespace raylight::models::wan
