#include "actors/diffusion/component_files.h"

#include <filesystem>
#include <functional>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "actors/diffusion/model_roots.h"
#include "models/core/safetensors.h"
#include "models/text/umt5_config.h"
#include "models/text/umt5_keys.h"
#include "models/vae/kl_vae_keys.h"
#include "models/vae/wan_vae_keys.h"
#include "models/vision/clip_vision_config.h"

namespace raylight::actors {
namespace {

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// Every tensor's shape from a file's header (nothing else is read), by the name `normalize` gives
// it (keys it maps to nullopt are left out); no normaliser: by the file's own names.
absl::StatusOr<std::map<std::string, std::vector<int64_t>>> HeaderShapes(
    const std::string& path,
    const std::function<std::optional<std::string>(const std::string&)>& normalize = nullptr) {
  auto file = models::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const models::StTensorInfo& tensor : (*file)->header().tensors) {
    if (!normalize) {
      shapes[tensor.name] = tensor.shape;
    } else if (std::optional<std::string> name = normalize(tensor.name)) {
      shapes[*name] = tensor.shape;
    }
  }
  return shapes;
}

}  // namespace

absl::StatusOr<std::string> ResolveComponent(const ComponentSearch& search, const std::string& name,
                                             const std::vector<std::string>& roots) {
  if (!name.empty()) {
    auto files = ResolveModel(name, roots);
    if (!files.ok()) return Invalid(search.field, std::string(files.status().message()));
    if (files->size() != 1) {
      return Invalid(search.field, absl::StrCat("'", name, "' is a directory; give one file"));
    }
    if (absl::Status fits = search.fits(files->front()); !fits.ok()) {
      return Invalid(search.field, absl::StrCat(files->front(), " is not a fitting ", search.what,
                                                ": ", fits.message()));
    }
    return files->front();
  }
  std::vector<std::string> found;  // sorted: directory order is not
  std::vector<std::string> looked;
  for (const std::string& root : roots) {
    const std::filesystem::path folder = std::filesystem::path(root) / search.folder;
    looked.push_back(folder.string());
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
      if (entry.path().extension() != ".safetensors") continue;
      // Through ResolveModel, as a named file: a regular file inside this root after symlinks,
      // checked before anything opens it (a FIFO would block the head).
      auto files = ResolveModel(search.folder + "/" + entry.path().filename().string(), {root});
      if (!files.ok() || files->size() != 1) continue;
      if (search.fits(files->front()).ok()) found.push_back(files->front());
    }
  }
  std::sort(found.begin(), found.end());
  if (found.empty()) {
    return Invalid(search.field, absl::StrCat("none given, and no fitting ", search.what, " in ",
                                              absl::StrJoin(looked, ", ")));
  }
  if (found.size() > 1) {
    return Invalid(search.field,
                   absl::StrCat("none given, and several ", search.what, " files to choose from (",
                                absl::StrJoin(found, ", "), "): name one"));
  }
  return found.front();
}

absl::StatusOr<std::string> ResolveTextEncoder(const std::string& field, const std::string& name,
                                               const std::vector<std::string>& roots,
                                               int64_t text_dim) {
  ComponentSearch search{.field = field, .folder = "text_encoders", .what = "umT5 encoder"};
  search.fits = [text_dim](const std::string& path) -> absl::Status {
    auto shapes = HeaderShapes(path, models::text::NormalizeUmt5Key);
    if (!shapes.ok()) return shapes.status();
    auto config = models::text::DetectUmt5Config(*shapes);
    if (!config.ok()) return config.status();
    if (config->dim != text_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("it encodes ", config->dim, "-wide tokens; the model takes ", text_dim));
    }
    return absl::OkStatus();
  };
  return ResolveComponent(search, name, roots);
}

absl::StatusOr<std::string> ResolveVae(const std::string& field, const std::string& name,
                                       const std::vector<std::string>& roots,
                                       int64_t latent_channels, const std::string& kind) {
  const bool image = kind == "kl";
  ComponentSearch search{
      .field = field, .folder = "vae", .what = image ? "image VAE (AutoencoderKL)" : "Wan VAE"};
  search.fits = [latent_channels, image](const std::string& path) -> absl::Status {
    auto header = HeaderShapes(path);
    if (!header.ok()) return header.status();
    int64_t channels = 0;
    if (image) {
      auto map = models::vae::MapKlVaeKeys(*header);
      if (!map.ok()) return map.status();
      channels = map->config.model_latent_channels();
    } else {
      auto map = models::vae::MapWanVaeKeys(*header);
      if (!map.ok()) return map.status();
      channels = map->config.z_dim;
    }
    if (channels != latent_channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "its latent has ", channels, " channels; the model's has ", latent_channels));
    }
    return absl::OkStatus();
  };
  return ResolveComponent(search, name, roots);
}

absl::StatusOr<std::string> ResolveClipVision(const std::string& field, const std::string& name,
                                              const std::vector<std::string>& roots,
                                              int64_t image_dim) {
  ComponentSearch search{.field = field, .folder = "clip_vision", .what = "CLIP vision tower"};
  search.fits = [image_dim](const std::string& path) -> absl::Status {
    auto shapes = HeaderShapes(path, models::vision::NormalizeClipVisionKey);
    if (!shapes.ok()) return shapes.status();
    auto config = models::vision::DetectClipVisionConfig(*shapes);
    if (!config.ok()) return config.status();
    if (config->width != image_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("it makes ", config->width, "-wide features; the model takes ", image_dim));
    }
    return absl::OkStatus();
  };
  return ResolveComponent(search, name, roots);
}

}  // namespace raylight::actors
