#include "models/wan/wan_conditioning.h"

#include <ATen/CPUGeneratorImpl.h>

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/latent_format.h"
#include "models/core/safetensors.h"
#include "models/core/safetensors_tensors.h"
#include "models/wan/wan_inspect.h"

namespace raylight::models::wan {
namespace {

// The tensor without a leading batch of 1 (the header check fixed its rank), as fp32, finite.
absl::StatusOr<at::Tensor> Unbatched(const std::string& where, const std::string& field,
                                     at::Tensor t, int64_t rank) {
  if (t.dim() == rank + 1) t = t[0];
  at::Tensor f = t.to(at::kFloat).contiguous();
  if (!at::isfinite(f).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": '", field, "' holds NaN or infinity"));
  }
  return f;
}

// ComfyUI's image-to-video inputs as Wan's `y` [1, 4 + C, F, H, W], as ComfyUI's WAN21.concat_cond
// builds it for a latent of the image's size: the mask's channels averaged, inverted (1 where a
// frame is given) and repeated to 4 (zeros without a mask), then the image latent taken into the
// model's space (process_in). Undefined when a value is not finite.
at::Tensor ComfyImageToY(const std::string& where, std::map<std::string, at::Tensor>& tensors) {
  auto image = Unbatched(where, "concat_latent_image", tensors["concat_latent_image"], 4);
  if (!image.ok()) return at::Tensor();
  at::Tensor mask;
  if (tensors.count("concat_mask")) {
    auto given = Unbatched(where, "concat_mask", tensors["concat_mask"], 4);
    if (!given.ok()) return at::Tensor();
    mask = given->unsqueeze(0);
  }
  return WanImageToY(image->unsqueeze(0), mask);
}

// Tensors that passed CheckWanConditioningHeader -> the conditioning.
absl::StatusOr<WanConditioning> Assemble(const std::string& where,
                                         std::map<std::string, at::Tensor> tensors) {
  WanConditioning out;
  auto text = Unbatched(where, "text", tensors["text"], 2);
  if (!text.ok()) return text.status();
  out.text = text->unsqueeze(0);
  if (tensors.count("clip_fea")) {
    auto clip = Unbatched(where, "clip_fea", tensors["clip_fea"], 2);
    if (!clip.ok()) return clip.status();
    out.clip_fea = clip->unsqueeze(0);
    if (tensors.count("concat_latent_image")) {
      out.y = ComfyImageToY(where, tensors);
      if (!out.y.defined()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": 'concat_latent_image' or 'concat_mask' holds NaN or infinity"));
      }
      return out;
    }
    auto y = Unbatched(where, "y", tensors["y"], 4);
    if (!y.ok()) return y.status();
    out.y = y->unsqueeze(0);
  }
  return out;
}

}  // namespace

at::Tensor WanImageToY(const at::Tensor& concat_latent_image, const at::Tensor& concat_mask) {
  const at::Tensor latent = concat_latent_image.to(at::kFloat);
  const auto format = LatentFormatForChannels(latent.size(1));
  const at::Tensor normalised = format.ok() ? ProcessIn(**format, latent) : latent;
  at::Tensor mask = at::zeros({1, 4, latent.size(2), latent.size(3), latent.size(4)});
  if (concat_mask.defined()) {
    mask = concat_mask.to(at::kFloat);
    if (mask.size(1) != 4) mask = at::mean(mask, 1, /*keepdim=*/true);
    mask = 1.0 - mask;
    if (mask.size(1) == 1) mask = mask.repeat({1, 4, 1, 1, 1});
  }
  return at::cat({mask, normalised}, 1).contiguous();
}

absl::StatusOr<WanConditioning> ReadWanConditioning(const std::string& path,
                                                    const WanConfig& config) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const std::string where = absl::StrCat("conditioning ", path);
  if (auto status = CheckWanConditioningHeader((*file)->header(), where, config); !status.ok()) {
    return status;
  }
  std::map<std::string, at::Tensor> tensors;
  for (const auto& info : (*file)->header().tensors) {
    auto view = ViewTensor(*file, info);
    if (!view.ok()) return view.status();
    tensors[info.name] = *view;
  }
  return Assemble(where, std::move(tensors));
}

absl::StatusOr<WanConditioning> ParseWanConditioning(absl::string_view bytes,
                                                     const std::string& source,
                                                     const WanConfig& config) {
  if (auto status = CheckWanConditioningBytes(bytes, source, config); !status.ok()) return status;
  auto tensors = ParseTensors(bytes, source);
  if (!tensors.ok()) return tensors.status();
  return Assemble(absl::StrCat("conditioning ", source), *std::move(tensors));
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
