#include "models/core/latent_file.h"

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"

namespace raylight::models {

namespace {

models::NamedTensors LatentTensors(const at::Tensor& latent, const at::Tensor& noise_mask = {}) {
  models::NamedTensors tensors = {{"latent_tensor", latent.to(at::kFloat).contiguous()},
                                  {"latent_format_version_0", at::empty({0}, at::kByte)}};
  if (noise_mask.defined())
    tensors.emplace_back("noise_mask", noise_mask.to(at::kFloat).contiguous());
  return tensors;
}

// A LATENT is floating point; an integer tensor is not one (converting it would hide the error).
absl::Status CheckFloating(const at::Tensor& latent, const std::string& source) {
  if (at::isFloatingType(latent.scalar_type())) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("latent ", source, ": 'latent_tensor' is ",
                                                 c10::toString(latent.scalar_type()),
                                                 ", not a floating-point tensor"));
}

// Files without the version marker are ComfyUI's old format (scaled by 0.18215).
at::Tensor Unscaled(at::Tensor latent, bool has_version_marker) {
  latent = latent.to(at::kFloat).clone();
  return has_version_marker ? latent : latent * (1.0 / 0.18215);
}

}  // namespace

absl::Status WriteLatentFile(const std::string& path, const at::Tensor& latent) {
  return models::WriteTensors(path, LatentTensors(latent));
}

absl::StatusOr<std::string> SerializeLatent(const at::Tensor& latent,
                                            const at::Tensor& noise_mask) {
  return models::SerializeTensors(LatentTensors(latent, noise_mask));
}

absl::StatusOr<Latent> ParseLatent(absl::string_view bytes, const std::string& source) {
  auto tensors = models::ParseTensors(bytes, source);
  if (!tensors.ok()) return tensors.status();
  auto it = tensors->find("latent_tensor");
  if (it == tensors->end()) {
    return absl::InvalidArgumentError(absl::StrCat("latent ", source, ": no 'latent_tensor'"));
  }
  if (auto status = CheckFloating(it->second, source); !status.ok()) return status;
  Latent latent{Unscaled(it->second, tensors->count("latent_format_version_0") > 0), {}};
  if (auto mask = tensors->find("noise_mask"); mask != tensors->end()) {
    if (!at::isFloatingType(mask->second.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("latent ", source, ": 'noise_mask' is not a floating-point tensor"));
    }
    latent.noise_mask = mask->second.to(at::kFloat).clone();
  }
  return latent;
}

absl::StatusOr<at::Tensor> ReadLatentFile(const std::string& path) {
  auto file = models::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const models::StTensorInfo* info = (*file)->header().Find("latent_tensor");
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("latent file ", path, ": no 'latent_tensor'"));
  }
  auto view = models::ViewTensor(*file, *info);
  if (!view.ok()) return view.status();
  if (auto status = CheckFloating(*view, path); !status.ok()) return status;
  return Unscaled(*view, (*file)->header().Find("latent_format_version_0") != nullptr);
}

}  // namespace raylight::models
