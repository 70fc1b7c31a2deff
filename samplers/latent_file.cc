#include "samplers/latent_file.h"

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"

namespace raylight::samplers {

namespace {

models::NamedTensors LatentTensors(const at::Tensor& latent) {
  return {{"latent_tensor", latent.to(at::kFloat).contiguous()},
          {"latent_format_version_0", at::empty({0}, at::kByte)}};
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

absl::StatusOr<std::string> SerializeLatent(const at::Tensor& latent) {
  return models::SerializeTensors(LatentTensors(latent));
}

absl::StatusOr<at::Tensor> ParseLatent(absl::string_view bytes, const std::string& source) {
  auto tensors = models::ParseTensors(bytes, source);
  if (!tensors.ok()) return tensors.status();
  auto it = tensors->find("latent_tensor");
  if (it == tensors->end()) {
    return absl::InvalidArgumentError(absl::StrCat("latent ", source, ": no 'latent_tensor'"));
  }
  return Unscaled(it->second, tensors->count("latent_format_version_0") > 0);
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
  return Unscaled(*view, (*file)->header().Find("latent_format_version_0") != nullptr);
}

}  // namespace raylight::samplers
