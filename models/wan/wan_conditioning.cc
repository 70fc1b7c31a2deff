#include "models/wan/wan_conditioning.h"

#include <ATen/CPUGeneratorImpl.h>

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/safetensors.h"
#include "models/core/safetensors_tensors.h"

namespace raylight::models::wan {
namespace {

std::string Shape(const at::Tensor& t) { return c10::str(t.sizes()); }

// The tensor without a leading batch of 1, as fp32; checks its rank and finiteness.
absl::StatusOr<at::Tensor> Unbatched(const std::string& where, const std::string& field,
                                     at::Tensor t, int64_t rank) {
  if (t.dim() == rank + 1 && t.size(0) == 1) t = t[0];
  if (t.dim() != rank) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": '", field, "' has shape ", Shape(t),
                                                   "; expected ", rank, " dimensions"));
  }
  if (!at::isFloatingType(t.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": '", field, "' is ", c10::toString(t.scalar_type()), ", not a float"));
  }
  at::Tensor f = t.to(at::kFloat).contiguous();
  if (!at::isfinite(f).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": '", field, "' holds NaN or infinity"));
  }
  return f;
}

}  // namespace

absl::StatusOr<WanConditioning> ReadWanConditioning(const std::string& path,
                                                    const WanConfig& config) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const std::string where = absl::StrCat("conditioning ", path);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& info : (*file)->header().tensors) {
    auto view = ViewTensor(*file, info);
    if (!view.ok()) return view.status();
    tensors[info.name] = *view;
  }
  const std::set<std::string> known = {"text", "clip_fea", "y"};
  std::vector<std::string> extra;
  for (const auto& [name, tensor] : tensors) {
    if (!known.count(name)) extra.push_back(name);
  }
  if (!extra.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": unknown tensors ",
                                                   absl::StrJoin(extra, ", "),
                                                   " (a Wan conditioning has text, clip_fea, y)"));
  }
  if (!tensors.count("text")) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": no 'text' tensor"));
  }
  WanConditioning out;
  auto text = Unbatched(where, "text", tensors["text"], 2);
  if (!text.ok()) return text.status();
  if (text->size(1) != config.text_dim || text->size(0) < 1 || text->size(0) > config.text_len) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": 'text' has shape ", Shape(*text), "; ",
                                                   config.name, " takes [1..", config.text_len,
                                                   ", ", config.text_dim, "]"));
  }
  out.text = text->unsqueeze(0);
  if (!config.i2v()) {
    for (const char* field : {"clip_fea", "y"}) {
      if (tensors.count(field)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": '", field, "' is for image-to-video; ", config.name, " is text-to-video"));
      }
    }
    return out;
  }
  for (const char* field : {"clip_fea", "y"}) {
    if (!tensors.count(field)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", config.name, " (image-to-video) needs '", field, "'"));
    }
  }
  auto clip = Unbatched(where, "clip_fea", tensors["clip_fea"], 2);
  if (!clip.ok()) return clip.status();
  if (clip->size(0) != config.image_tokens || clip->size(1) != config.image_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": 'clip_fea' has shape ", Shape(*clip), "; ", config.name, " takes [",
                     config.image_tokens, ", ", config.image_dim, "]"));
  }
  out.clip_fea = clip->unsqueeze(0);
  auto y = Unbatched(where, "y", tensors["y"], 4);
  if (!y.ok()) return y.status();
  const int64_t y_channels = config.in_channels - config.out_channels;
  if (y->size(0) != y_channels) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": 'y' has ", y->size(0), " channels; ",
                                                   config.name, " takes ", y_channels));
  }
  out.y = y->unsqueeze(0);
  return out;
}

absl::Status WriteWanConditioning(const std::string& path, const WanConditioning& c) {
  NamedTensors tensors = {{"text", c.text.contiguous()}};
  if (c.clip_fea.defined()) tensors.emplace_back("clip_fea", c.clip_fea.contiguous());
  if (c.y.defined()) tensors.emplace_back("y", c.y.contiguous());
  return WriteTensors(path, tensors, {{"raylight.conditioning", "wan/1"}});
}

WanConditioning RandomWanConditioning(const WanConfig& config, int64_t tokens, uint64_t seed,
                                      int64_t frames, int64_t height, int64_t width) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  WanConditioning c;
  c.text = at::randn({1, tokens, config.text_dim}, generator);
  if (config.i2v()) {
    c.clip_fea = at::randn({1, config.image_tokens, config.image_dim}, generator);
    c.y =
        at::randn({1, config.in_channels - config.out_channels, frames, height, width}, generator);
  }
  return c;
}

}  // namespace raylight::models::wan
