#include "models/wan/wan_inspect.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/weight_shapes.h"
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
  auto shapes = ReadKeyShapes(paths, NormalizeWanKey);
  if (!shapes.ok()) return shapes.status();
  return DetectWanConfig(*shapes);
}

absl::Status CheckWanConditioningHeader(const StHeader& header, const std::string& where,
                                        const WanConfig& config) {
  std::map<std::string, const StTensorInfo*> tensors;
  std::vector<std::string> extra;
  const std::set<std::string> known = {"text", "clip_fea", "y", "concat_latent_image",
                                       "concat_mask"};
  for (const StTensorInfo& info : header.tensors) {
    tensors[info.name] = &info;
    if (!known.count(info.name)) extra.push_back(info.name);
  }
  if (!extra.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": unknown tensors ",
                                                   absl::StrJoin(extra, ", "),
                                                   " (a Wan conditioning has text, clip_fea, y or "
                                                   "concat_latent_image and concat_mask)"));
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
    for (const char* field : {"clip_fea", "y", "concat_latent_image", "concat_mask"}) {
      if (tensors.count(field)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": '", field, "' is for image-to-video; ", config.name, " is text-to-video"));
      }
    }
    return absl::OkStatus();
  }
  // The start image comes as `y` (the mask and the normalised image latent, as the official code
  // builds it) or as ComfyUI's WanImageToVideo leaves it: `concat_latent_image` (the VAE's latent)
  // and an optional `concat_mask` (0 where a frame is given), turned into `y` on reading.
  const bool comfy_image = tensors.count("concat_latent_image") > 0;
  if (comfy_image && tensors.count("y")) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": both 'y' and 'concat_latent_image'; give one"));
  }
  if (!comfy_image && tensors.count("concat_mask")) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": 'concat_mask' without 'concat_latent_image'"));
  }
  for (const char* field : {"clip_fea", comfy_image ? "concat_latent_image" : "y"}) {
    if (!tensors.count(field)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", config.name, " (image-to-video) needs '", field, "'"));
    }
  }
  auto clip = Unbatched(where, *tensors["clip_fea"], 2);
  if (!clip.ok()) return clip.status();
  // One image's tokens, or a start and an end image's (FLF2V, as ComfyUI allows on any I2V model).
  if (((*clip)[0] != config.image_tokens && (*clip)[0] != 2 * config.image_tokens) ||
      (*clip)[1] != config.image_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": 'clip_fea' has shape ", ShapeText(*clip), "; ", config.name,
                     " takes [", config.image_tokens, ", ", config.image_dim, "] (one image) or [",
                     2 * config.image_tokens, ", ", config.image_dim, "] (start and end images)"));
  }
  const int64_t y_channels = config.in_channels - config.out_channels;
  if (comfy_image) {
    auto image = Unbatched(where, *tensors["concat_latent_image"], 4);
    if (!image.ok()) return image.status();
    if ((*image)[0] != y_channels - 4) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": 'concat_latent_image' has ",
                                                     (*image)[0], " channels; ", config.name,
                                                     " takes ", y_channels - 4));
    }
    if (tensors.count("concat_mask")) {
      auto mask = Unbatched(where, *tensors["concat_mask"], 4);
      if (!mask.ok()) return mask.status();
      if (((*mask)[0] != 1 && (*mask)[0] != 4) ||
          !std::equal(mask->begin() + 1, mask->end(), image->begin() + 1)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": 'concat_mask' has shape ", ShapeText(*mask),
                         "; it takes [1 or 4, ", (*image)[1], ", ", (*image)[2], ", ", (*image)[3],
                         "] (the image latent's frames and size)"));
      }
    }
    return absl::OkStatus();
  }
  auto y = Unbatched(where, *tensors["y"], 4);
  if (!y.ok()) return y.status();
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
