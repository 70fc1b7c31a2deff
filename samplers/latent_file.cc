#include "samplers/latent_file.h"

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"

namespace raylight::samplers {

absl::Status WriteLatentFile(const std::string& path, const at::Tensor& latent) {
  models::NamedTensors tensors = {{"latent_tensor", latent.to(at::kFloat).contiguous()},
                                  {"latent_format_version_0", at::empty({0}, at::kByte)}};
  return models::WriteTensors(path, tensors);
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
  at::Tensor latent = view->to(at::kFloat).clone();
  if ((*file)->header().Find("latent_format_version_0") == nullptr)
    latent = latent * (1.0 / 0.18215);
  return latent;
}

}  // namespace raylight::samplers
