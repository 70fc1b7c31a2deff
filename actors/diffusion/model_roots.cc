#include "actors/diffusion/model_roots.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/lora_keys.h"
#include "models/core/safetensors.h"
#include "models/family/model_info.h"

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

bool IsShard(const fs::path& file) {
  return file.extension() == ".safetensors" &&
         file.stem().string().find("-of-") != std::string::npos;
}

// Walks one root for ListModels; `budget` counts the directory entries left to read.
void ListUnder(const fs::path& root, const fs::path& dir, int depth, int& budget,
               std::map<std::string, ModelEntry>& found) {
  std::error_code error;
  std::vector<fs::path> subdirs;
  ModelEntry shards;
  bool only_shards = true;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    if (--budget < 0) return;
    const fs::path path = it->path();
    const fs::path resolved = fs::canonical(path, error);
    if (error || !Inside(resolved, root)) {
      error.clear();
      continue;
    }
    if (fs::is_directory(resolved, error)) {
      if (depth > 0) subdirs.push_back(path);
      continue;
    }
    const bool gguf = path.extension() == ".gguf";
    if ((path.extension() != ".safetensors" && !gguf) || !fs::is_regular_file(resolved, error)) {
      continue;
    }
    const int64_t size = static_cast<int64_t>(fs::file_size(resolved, error));
    if (error) {
      error.clear();
      continue;
    }
    only_shards = only_shards && IsShard(path);
    shards.bytes += size;
    ++shards.files;
    const std::string name = path.lexically_relative(root).string();
    // The header says whether it is a LoRA (an unreadable file is listed as a model: a job
    // naming it gets the parse error).
    bool lora = false;
    if (!gguf) {
      auto file = models::SafetensorsFile::Open(resolved.string());
      lora = file.ok() && models::IsLoraFile((*file)->header());
    }
    std::string family;
    if (!lora) {
      auto info = models::InspectModel({resolved.string()});
      if (info.ok()) family = info->family;
    }
    found.try_emplace(name, ModelEntry{name, size, 1, lora, std::move(family)});
  }
  // A directory of shards is one model (ResolveModel loads them together), not its files.
  if (shards.files > 0 && only_shards && dir != root) {
    for (auto it = found.begin(); it != found.end();) {
      it = fs::path(it->first).parent_path() == dir.lexically_relative(root) ? found.erase(it)
                                                                             : std::next(it);
    }
    shards.name = dir.lexically_relative(root).string();
    found.try_emplace(shards.name, shards);
  }
  std::sort(subdirs.begin(), subdirs.end());
  for (const fs::path& sub : subdirs) ListUnder(root, sub, depth - 1, budget, found);
}

}  // namespace

std::vector<ModelEntry> ListModels(const std::vector<std::string>& roots, int max_depth,
                                   int max_entries) {
  std::map<std::string, ModelEntry> all;
  int budget = max_entries;
  for (const std::string& root_text : roots) {
    std::error_code error;
    const fs::path root = fs::canonical(root_text, error);
    if (error || !fs::is_directory(root, error)) continue;
    std::map<std::string, ModelEntry> found;
    ListUnder(root, root, max_depth, budget, found);
    for (auto& [name, entry] : found) all.try_emplace(name, std::move(entry));  // first root wins
  }
  std::vector<ModelEntry> out;
  out.reserve(all.size());
  for (auto& [name, entry] : all) out.push_back(std::move(entry));
  return out;
}

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
