// A checkpoint opened for loading: one or more safetensors files (sharded checkpoints) or a GGUF
// file, every tensor renamed to the model's internal spelling by the model's key normaliser, fp8
// "scaled" weights paired with their per-tensor scales, GGUF block-quantised weights kept as
// their blocks. Nothing is copied: tensors are views of the mapped files until a WeightProvider
// places them.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/ggml_type.h"
#include "models/core/model_prefix.h"
#include "models/core/safetensors.h"
#include "models/core/weight_patch.h"
#include "models/core/weight_shapes.h"

namespace raylight::models {

// A GGUF tensor stored in quantisation blocks: `data` holds the raw blocks (kByte, 1-D).
struct GgufEncoding {
  GgmlType type = GgmlType::kQ8_0;
  std::vector<int64_t> shape;  // the values' shape
};

struct CheckpointTensor {
  at::Tensor data;                   // CPU view of the file (any stored dtype)
  std::optional<float> scale;        // fp8 "scaled" weights: real value = data * scale
  std::optional<GgufEncoding> gguf;  // GGUF quantised weights: real value = dequantised blocks
  // LoRA updates of a GGUF weight kept quantised, applied after each dequantisation.
  std::vector<WeightPatch> patches;
  std::string file;      // where it came from, for errors
  std::string raw_name;  // its name in that file

  // Stored in a form the model cannot compute with (fp8 with a scale, GGUF blocks): kept that way
  // where placements allow, and decoded when a block is acquired.
  bool encoded() const { return scale.has_value() || gguf.has_value(); }
  // The shape of the values (GGUF blocks are stored flat).
  std::vector<int64_t> value_shape() const;
  int64_t value_numel() const;
};

struct Checkpoint {
  std::map<std::string, CheckpointTensor> tensors;      // by internal name
  std::map<std::string, std::string> metadata;          // merged __metadata__ of every file
  std::vector<std::shared_ptr<SafetensorsFile>> files;  // the views also keep their files mapped
  // Keys the normaliser did not recognise (reported as "extra" by the model's validation).
  std::vector<std::string> unknown_keys;
};

// Maps a raw key (any known spelling, any prefix) to the internal name, or nullopt if the key is
// not one of the model's.
using KeyNormalizer = std::function<std::optional<std::string>(const std::string& raw)>;

// Opens every file, validates it, normalises names. A GGUF file (told by its magic) is read with
// gguf.h: F32/F16/BF16 tensors become plain views, quantised ones keep their blocks. Scale tensors
// (`<module>.scale_weight`,
// `<module>.weight_scale`) attach to `<module>.weight`; `scaled_fp8` markers and input scales are
// dropped; an fp8 weight without a scale (ComfyUI's unscaled fp8 files) gets scale 1. Two keys
// that normalise to one name, or a scale without its weight, are errors naming the file and key.
absl::StatusOr<Checkpoint> OpenCheckpoint(const std::vector<std::string>& paths,
                                          const KeyNormalizer& normalize);

// Names and value shapes of an opened checkpoint, for the detection and checks that also run on
// headers alone.
KeyShapes KeyShapesOf(const Checkpoint& checkpoint);

// The real value of a checkpoint tensor as `dtype` on `device` (fp8 scaled weights and GGUF blocks
// dequantised, on `device`: the stored bytes are what crosses to it).
// Attached LoRA patches are merged (in float32, then through the stored dtype as a merge at load
// would round them, except for GGUF weights, which have none).
at::Tensor Materialize(const CheckpointTensor& tensor, at::ScalarType dtype, at::Device device);

// Rows [begin, end) of Materialize's value on the CPU, merging attached patches into only those
// rows where their form allows (weight_patch.h), so that an FSDP rank merges its own shard.
at::Tensor MaterializeRows(const CheckpointTensor& tensor, int64_t begin, int64_t end,
                           at::ScalarType dtype);

}  // namespace raylight::models
