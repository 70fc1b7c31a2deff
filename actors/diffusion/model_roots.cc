#include "actors/diffusion/model_roots.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raylight::actors {
namespace {

namespace fs = std::filesystem;

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

bool Inside(const fs::path& path, const fs::path& root) {
  auto [root_end, unused] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveModel(const std::string& model,
                                                      const std::vector<std::string>& roots) {
  if (model.empty()) return Invalid("model", "required (a name under a model root, or a path)");
  if (model.find('\0') != std::string::npos) return Invalid("model", "contains a NUL byte");
  if (roots.empty()) {
    return absl::FailedPreconditionError(
        "model: the head has no model roots (raylight-head --model-root DIR)");
  }
  const fs::path requested(model);
  for (const auto& part : requested) {
    if (part == "..") return Invalid("model", absl::StrCat("'", model, "': '..' is not allowed"));
  }
  std::vector<std::string> searched;
  for (const std::string& root_text : roots) {
    std::error_code error;
    const fs::path root = fs::canonical(root_text, error);
    if (error) continue;
    searched.push_back(root.string());
    const fs::path candidate = requested.is_absolute() ? requested : root / requested;
    if (!fs::exists(candidate, error)) continue;
    // Symlinks are followed, then the target must still be inside the root.
    const fs::path resolved = fs::canonical(candidate, error);
    if (error || !Inside(resolved, root)) {
      if (requested.is_absolute()) continue;  // another root may hold it
      return Invalid("model",
                     absl::StrCat("'", model, "' resolves outside the model root ", root.string()));
    }
    if (resolved == root) {
      return Invalid("model", absl::StrCat("'", model, "' is the model root ", root.string(),
                                           " itself, not a model in it"));
    }
    std::vector<std::string> files;
    if (fs::is_directory(resolved)) {
      for (const auto& entry : fs::directory_iterator(resolved, error)) {
        if (entry.path().extension() != ".safetensors") continue;
        const fs::path file = fs::canonical(entry.path(), error);
        if (error || !Inside(file, root)) continue;
        // A FIFO or device named *.safetensors would block the head's one I/O thread when
        // opened: only regular files are shards (stat does not open).
        if (!fs::is_regular_file(file, error)) {
          return Invalid("model",
                         absl::StrCat("'", entry.path().string(), "' is not a regular file"));
        }
        files.push_back(file.string());
      }
      std::sort(files.begin(), files.end());
      if (files.empty()) {
        return Invalid("model", absl::StrCat("'", model, "' is a directory with no .safetensors"));
      }
    } else if (fs::is_regular_file(resolved, error)) {
      files.push_back(resolved.string());
    } else {
      return Invalid("model", absl::StrCat("'", model, "' is not a regular file"));
    }
    return files;
  }
  if (requested.is_absolute()) {
    for (const std::string& root : searched) {
      if (Inside(fs::weakly_canonical(requested), root)) {
        return absl::NotFoundError(absl::StrCat("model: '", model, "' does not exist"));
      }
    }
    return Invalid("model", absl::StrCat("'", model, "' is outside the model roots (",
                                         absl::StrJoin(searched, ", "), ")"));
  }
  return absl::NotFoundError(absl::StrCat("model: '", model, "' not found under the model roots (",
                                          absl::StrJoin(searched, ", "), ")"));
}

absl::Status CheckModelFiles(const std::string& field, const std::vector<std::string>& files,
                             const std::vector<std::string>& roots) {
  if (files.empty()) return Invalid(field, "no files");
  if (roots.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": this worker has no model roots (raylight-node --model-root DIR)"));
  }
  std::vector<fs::path> canonical_roots;
  for (const std::string& root : roots) {
    std::error_code error;
    fs::path path = fs::canonical(root, error);
    if (!error) canonical_roots.push_back(std::move(path));
  }
  for (const std::string& file : files) {
    std::error_code error;
    const fs::path resolved = fs::canonical(file, error);
    if (error) return Invalid(field, absl::StrCat("'", file, "' does not exist"));
    const bool inside = std::any_of(canonical_roots.begin(), canonical_roots.end(),
                                    [&](const fs::path& root) { return Inside(resolved, root); });
    if (!inside) {
      return absl::PermissionDeniedError(absl::StrCat(field, ": '", file,
                                                      "' is outside this worker's model roots (",
                                                      absl::StrJoin(roots, ", "), ")"));
    }
    if (!fs::is_regular_file(resolved, error)) {
      return Invalid(field, absl::StrCat("'", file, "' is not a regular file"));
    }
  }
  return absl::OkStatus();
}

}  // namespace raylight::actors
