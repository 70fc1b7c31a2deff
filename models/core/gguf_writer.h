// Writes GGUF v3 files (the reader's other half): what raylight-make-checkpoint uses to make
// quantised checkpoints at real sizes for benchmarks, laid out as city96's converter lays out
// Wan files (tensors over 4 dimensions stored flattened, their shape under
// `comfy.gguf.orig_shape.<name>`). Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "models/core/ggml_type.h"

namespace raylight::models {

struct GgufWriteTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> shape;  // torch order; more than 4 dimensions are flattened to 2
  absl::string_view bytes;     // exactly the tensor's stored bytes (blocks, or F32/F16/BF16 values)
};

// Writes `tensors` (32-byte aligned) with `metadata` strings (plus general.architecture when
// given there) to `path`. Errors name the tensor whose bytes do not match its type and shape.
absl::Status WriteGguf(const std::string& path, const std::vector<GgufWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace raylight::models
