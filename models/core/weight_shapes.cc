#include "models/core/weight_shapes.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/gguf.h"
#include "models/core/safetensors.h"
#include "models/core/scaled_fp8_keys.h"

namespace raylight::models {
namespace {

std::string Listed(const std::vector<std::string>& items) {
  constexpr size_t kShown = 8;
  std::vector<std::string> shown(items.begin(), items.begin() + std::min(items.size(), kShown));
  std::string text = absl::StrJoin(shown, ", ");
  if (items.size() > kShown) absl::StrAppend(&text, ", ... (", items.size(), " in all)");
  return text;
}

}  // namespace

absl::Status CheckWeightShapes(const std::string& model, const std::string& config,
                               const WeightShapes& expected, const WeightShapes& actual,
                               const std::vector<std::string>& unknown_keys,
                               const std::function<std::string(const std::string&)>& display) {
  auto shown = [&](const std::string& name) { return display ? display(name) : name; };
  std::vector<std::string> missing, extra, wrong;
  for (const auto& [name, shape] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      missing.push_back(name);
    } else if (it->second != shape) {
      wrong.push_back(absl::StrCat(shown(name), " is [", absl::StrJoin(it->second, ", "),
                                   "], expected [", absl::StrJoin(shape, ", "), "]"));
    }
  }
  for (const auto& [name, shape] : actual) {
    if (!expected.contains(name)) extra.push_back(shown(name));
  }
  extra.insert(extra.end(), unknown_keys.begin(), unknown_keys.end());
  if (missing.empty() && extra.empty() && wrong.empty()) return absl::OkStatus();
  std::string message = absl::StrCat(model, " checkpoint does not match ", config, ":");
  if (!missing.empty()) absl::StrAppend(&message, " missing keys: ", Listed(missing), ";");
  if (!extra.empty()) absl::StrAppend(&message, " extra keys: ", Listed(extra), ";");
  if (!wrong.empty()) absl::StrAppend(&message, " wrong shapes: ", Listed(wrong), ";");
  return absl::InvalidArgumentError(message);
}

KeyShapes RenamedKeyShapes(
    const KeyShapes& raw,
    const std::function<std::optional<std::string>(const std::string&)>& normalize) {
  KeyShapes named;
  named.metadata = raw.metadata;
  named.unknown_keys = raw.unknown_keys;
  for (const auto& [key, shape] : raw.shapes) {
    if (auto name = normalize(key)) {
      named.shapes[*name] = shape;
    } else {
      named.unknown_keys.push_back(key);
    }
  }
  return named;
}

absl::StatusOr<KeyShapes> ReadKeyShapes(
    const std::vector<std::string>& paths,
    const std::function<std::optional<std::string>(const std::string&)>& normalize) {
  if (paths.empty()) return absl::InvalidArgumentError("checkpoint: no files given");
  KeyShapes shapes;
  auto add = [&](const std::string& raw, const std::vector<int64_t>& shape) {
    // An fp8 weight's scale and markers are not weights (OpenCheckpoint attaches and drops them);
    // a GGUF file has none of these keys.
    if (ScaledWeightName(raw) || IsDroppedScaleKey(raw)) return;
    if (auto name = normalize(raw)) {
      shapes.shapes[*name] = shape;
    } else {
      shapes.unknown_keys.push_back(raw);
    }
  };
  for (const std::string& path : paths) {
    if (IsGgufPath(path)) {  // city96's layout: ComfyUI's key names, every type a float
      auto file = GgufFile::Open(path);
      if (!file.ok()) return file.status();
      for (const auto& [key, value] : (*file)->header().metadata) shapes.metadata[key] = value;
      for (const GgufTensorInfo& info : (*file)->header().tensors) add(info.name, info.shape);
      continue;
    }
    auto file = SafetensorsFile::Open(path);
    if (!file.ok()) return file.status();
    for (const auto& [key, value] : (*file)->header().metadata) shapes.metadata[key] = value;
    for (const StTensorInfo& info : (*file)->header().tensors) add(info.name, info.shape);
  }
  return shapes;
}

}  // namespace raylight::models
