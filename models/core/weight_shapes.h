// Checking a checkpoint's weights against the names and shapes a model config needs. Torch-free:
// the head runs it on headers, the loaders on opened checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace raylight::models {

using WeightShapes = std::map<std::string, std::vector<int64_t>>;  // internal name -> shape

// What detection needs from a checkpoint: names and shapes, no tensor data (the head reads
// headers only, without libtorch).
struct KeyShapes {
  WeightShapes shapes;  // by internal name
  std::map<std::string, std::string> metadata;
  std::vector<std::string> unknown_keys;  // raw names the model's normaliser did not recognise
};

// The key shapes of the checkpoint in `paths` (safetensors shards or one GGUF file), named by
// `normalize` (raw key -> internal name, nullopt: not the model's). Malformed files fail with
// the parser's error and path.
absl::StatusOr<KeyShapes> ReadKeyShapes(
    const std::vector<std::string>& paths,
    const std::function<std::optional<std::string>(const std::string&)>& normalize);

// `raw` (read with raw names) named by `normalize` as ReadKeyShapes would have named it: one read
// of the headers serves every family a caller tries.
KeyShapes RenamedKeyShapes(
    const KeyShapes& raw,
    const std::function<std::optional<std::string>(const std::string&)>& normalize);

// OK, or one InvalidArgument listing the missing keys, the extra ones (present but not expected,
// and `unknown_keys` the model's normaliser did not recognise) and the wrong shapes, each list cut
// at eight entries: "<model> checkpoint does not match <config>: missing keys: ...".
// `display` names a key in messages (its raw name in the file, where the caller knows it).
absl::Status CheckWeightShapes(
    const std::string& model, const std::string& config, const WeightShapes& expected,
    const WeightShapes& actual, const std::vector<std::string>& unknown_keys,
    const std::function<std::string(const std::string&)>& display = nullptr);

}  // namespace raylight::models
