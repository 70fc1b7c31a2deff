#include "actors/diffusion/text_encoder_files.h"

#include <filesystem>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "actors/diffusion/model_roots.h"
#include "models/core/safetensors.h"
#include "models/text/umt5_config.h"
#include "models/text/umt5_keys.h"

namespace raylight::actors {
namespace {

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// The umT5 config a file's header holds, from names and shapes alone.
absl::StatusOr<models::text::Umt5Config> Umt5Of(const std::string& path) {
  auto file = models::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const models::StTensorInfo& tensor : (*file)->header().tensors) {
    if (auto name = models::text::NormalizeUmt5Key(tensor.name)) shapes[*name] = tensor.shape;
  }
  return models::text::DetectUmt5Config(shapes);
}

}  // namespace

absl::StatusOr<std::string> ResolveTextEncoder(const std::string& field, const std::string& name,
                                               const std::vector<std::string>& roots,
                                               int64_t text_dim) {
  std::string path;
  absl::StatusOr<models::text::Umt5Config> config;
  if (!name.empty()) {
    auto files = ResolveModel(name, roots);
    if (!files.ok()) return Invalid(field, std::string(files.status().message()));
    if (files->size() != 1) {
      return Invalid(field, absl::StrCat("'", name, "' is a directory; an encoder is one file"));
    }
    path = files->front();
    config = Umt5Of(path);
    if (!config.ok()) {
      return Invalid(field,
                     absl::StrCat(path, " is not a umT5 encoder: ", config.status().message()));
    }
  } else {
    std::map<std::string, models::text::Umt5Config> found;  // by path: sorted
    std::vector<std::string> looked;
    for (const std::string& root : roots) {
      const std::filesystem::path folder = std::filesystem::path(root) / "text_encoders";
      looked.push_back(folder.string());
      std::error_code error;
      for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
        if (entry.path().extension() != ".safetensors") continue;
        // Through ResolveModel, as a named encoder: a regular file inside this root after
        // symlinks, checked before anything opens it (a FIFO would block the head).
        auto files = ResolveModel("text_encoders/" + entry.path().filename().string(), {root});
        if (!files.ok() || files->size() != 1) continue;
        if (auto umt5 = Umt5Of(files->front()); umt5.ok()) found.emplace(files->front(), *umt5);
      }
    }
    if (found.empty()) {
      return Invalid(field,
                     absl::StrCat("none given, and no umT5 file in ", absl::StrJoin(looked, ", ")));
    }
    if (found.size() > 1) {
      std::vector<std::string> paths;
      for (const auto& [candidate, unused] : found) paths.push_back(candidate);
      return Invalid(field, absl::StrCat("none given, and several umT5 files to choose from (",
                                         absl::StrJoin(paths, ", "), "): name one"));
    }
    std::tie(path, config) = *found.begin();
  }
  if (config->dim != text_dim) {
    return Invalid(field, absl::StrCat(path, " encodes ", config->dim,
                                       "-wide tokens; the model takes ", text_dim));
  }
  return path;
}

}  // namespace raylight::actors
