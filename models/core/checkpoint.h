// A checkpoint opened for loading: one or more safetensors files (sharded checkpoints), every
// tensor renamed to the model's internal spelling by the model's key normaliser, fp8 "scaled"
// weights paired with their per-tensor scales. Nothing is copied: tensors are views of the
// mapped files until a WeightProvider places them.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/model_prefix.h"
#include "models/core/safetensors.h"

namespace raylight::models {

struct CheckpointTensor {
  at::Tensor data;             // CPU view of the file (any stored dtype)
  std::optional<float> scale;  // fp8 "scaled" weights: real value = data * scale
  std::string file;            // where it came from, for errors
  std::string raw_name;        // its name in that file
};

struct Checkpoint {
  std::map<std::string, CheckpointTensor> tensors;  // by internal name
  std::map<std::string, std::string> metadata;      // merged __metadata__ of every file
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  // Keys the normaliser did not recognise (reported as "extra" by the model's validation).
  std::vector<std::string> unknown_keys;
};

// Maps a raw key (any known spelling, any prefix) to the internal name, or nullopt if the key is
// not one of the model's.
using KeyNormalizer = std::function<std::optional<std::string>(const std::string& raw)>;

// Opens every file, validates it, normalises names. Scale tensors (`<module>.scale_weight`,
// `<module>.weight_scale`) attach to `<module>.weight`; `scaled_fp8` markers and input scales are
// dropped. Two keys that normalise to one name, a scale without its weight, or an fp8 weight
// without a scale are errors naming the file and key.
absl::StatusOr<Checkpoint> OpenCheckpoint(const std::vector<std::string>& paths,
                                          const KeyNormalizer& normalize);

// The real value of a checkpoint tensor as `dtype` on `device` (fp8 scaled weights dequantised).
at::Tensor Materialize(const CheckpointTensor& tensor, at::ScalarType dtype, at::Device device);

}  // namespace raylight::models
