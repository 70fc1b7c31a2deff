#include "models/wan/wan_inspect.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/wan/wan_keys.h"

namespace raylight::models::wan {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool IsFloat(StDtype dtype) {
  switch (dtype) {
    case StDtype::kF64:
    case StDtype::kF32:
    case StDtype::kF16:
    case StDtype::kBF16:
    case StDtype::kF8E4M3:
    case StDtype::kF8E5M2:
      return true;
    default:
      return false;
  }
}

// The shape without a leading batch of 1, checked to have `rank` dimensions and a float dtype.
absl::StatusOr<std::vector<int64_t>> Unbatched(const std::string& where, const StTensorInfo& info,
                                               size_t rank) {
  std::vector<int64_t> shape = info.shape;
  if (shape.size() == rank + 1 && shape[0] == 1) shape.erase(shape.begin());
  if (shape.size() != rank) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": '", info.name, "' has shape ",
                                                   ShapeText(info.shape), "; expected ", rank,
                                                   " dimensions"));
  }
  if (!IsFloat(info.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": '", info.name, "' is ", StDtypeName(info.dtype), ", not a float"));
  }
  return shape;
}

}  // namespace

absl::StatusOr<WanConfig> InspectWanCheckpoint(const std::vector<std::string>& paths) {
  if (paths.empty()) return absl::InvalidArgumentError("checkpoint: no files given");
  WanKeyShapes shapes;
  for (const std::string& path : paths) {
    auto file = SafetensorsFile::Open(path);
    if (!file.ok()) return file.status();
    for (const auto& [key, value] : (*file)->header().metadata) shapes.metadata[key] = value;
    for (const StTensorInfo& info : (*file)->header().tensors) {
      if (auto name = NormalizeWanKey(info.name)) {
        shapes.shapes[*name] = info.shape;
      } else {
        shapes.unknown_keys.push_back(info.name);
      }
    }
  }
  return DetectWanConfig(shapes);
}

absl::Status CheckWanConditioningHeader(const StHeader& header, const std::string& where,
                                        const WanConfig& config) {
  std::map<std::string, const StTensorInfo*> tensors;
  std::vector<std::string> extra;
  const std::set<std::string> known = {"text", "clip_fea", "y"};
  for (const StTensorInfo& info : header.tensors) {
    tensors[info.name] = &info;
    if (!known.count(info.name)) extra.push_back(info.name);
  }
  if (!extra.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": unknown tensors ",
                                                   absl::StrJoin(extra, ", "),
                                                   " (a Wan conditioning has text, clip_fea, y)"));
  }
  if (!tensors.count("text")) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": no 'text' tensor"));
  }
  auto text = Unbatched(where, *tensors["text"], 2);
  if (!text.ok()) return text.status();
  if ((*text)[1] != config.text_dim || (*text)[0] < 1 || (*text)[0] > WanConfig::kMaxTextTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": 'text' has shape ", ShapeText(*text), "; ", config.name,
                     " takes [1..", WanConfig::kMaxTextTokens, ", ", config.text_dim, "]"));
  }
  if (!config.i2v()) {
    for (const char* field : {"clip_fea", "y"}) {
      if (tensors.count(field)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": '", field, "' is for image-to-video; ", config.name, " is text-to-video"));
      }
    }
    return absl::OkStatus();
  }
  for (const char* field : {"clip_fea", "y"}) {
    if (!tensors.count(field)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", config.name, " (image-to-video) needs '", field, "'"));
    }
  }
  auto clip = Unbatched(where, *tensors["clip_fea"], 2);
  if (!clip.ok()) return clip.status();
  if ((*clip)[0] != config.image_tokens || (*clip)[1] != config.image_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": 'clip_fea' has shape ", ShapeText(*clip), "; ", config.name,
                     " takes [", config.image_tokens, ", ", config.image_dim, "]"));
  }
  auto y = Unbatched(where, *tensors["y"], 4);
  if (!y.ok()) return y.status();
  const int64_t y_channels = config.in_channels - config.out_channels;
  if ((*y)[0] != y_channels) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": 'y' has ", (*y)[0], " channels; ",
                                                   config.name, " takes ", y_channels));
  }
  return absl::OkStatus();
}

absl::Status CheckWanConditioningBytes(absl::string_view bytes, const std::string& source,
                                       const WanConfig& config) {
  auto header = ParseSafetensors(bytes, source);
  if (!header.ok()) return header.status();
  return CheckWanConditioningHeader(*header, absl::StrCat("conditioning ", source), config);
}

}  // namespace raylight::models::wan
