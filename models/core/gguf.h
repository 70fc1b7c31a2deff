// The GGUF reader (llama.cpp's file format, as city96's ComfyUI-GGUF writes Wan and Flux
// checkpoints): parses and strictly validates the header against the buffer it describes, and maps
// files read-only so that tensors are views of the page cache, as safetensors.h does.
//
// Torch-free on purpose (the head inspects GGUF models and the fuzzer links the parser alone);
// dequantisation lives in gguf_dequant.h.
//
// Validation (each failure names the source and, where there is one, the field or tensor):
//  - magic "GGUF", version 2 or 3 (version 1 used 32-bit counts and is not read);
//  - every string, array and value lies inside the buffer; counts are bounded before anything is
//    allocated for them; arrays nest at most kMaxArrayDepth deep;
//  - `general.alignment`, when present, is a u32 power of two;
//  - every tensor has 1..4 dimensions of at least 1 whose product does not overflow, a type this
//    reader knows, a first dimension that holds whole quantisation blocks, and an offset aligned
//    and inside the data section, which starts at the aligned end of the header;
//  - no two tensors' bytes overlap; names are unique.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/core/ggml_type.h"
#include "models/core/mapped_file.h"

namespace raylight::models {

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;  // as llama.cpp prints it ("Q4_K")
  int64_t block_elements;
  int64_t block_bytes;
};
// The traits of a type id, or an error naming the id for one this reader does not know.
absl::StatusOr<GgmlTypeTraits> TraitsOf(uint32_t type_id);
const GgmlTypeTraits& TraitsOf(GgmlType type);
// "Q8_0" -> kQ8_0 (case-insensitive), for command lines.
absl::StatusOr<GgmlType> ParseGgmlType(absl::string_view name);
// Bytes of `elements` values stored as `type` (`elements` a multiple of its block).
int64_t GgmlBytes(GgmlType type, int64_t elements);

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  // torch order (outermost first): GGUF's dimensions reversed, or the `comfy.gguf.orig_shape`
  // that city96's converter records for tensors it reshaped (5-D convolutions).
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // inside the data section
  uint64_t bytes = 0;
  int64_t numel() const;
};

struct GgufHeader {
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;             // where the data section starts in the buffer
  std::vector<GgufTensorInfo> tensors;  // in header order
  // Scalar metadata as text (numbers printed, booleans "true"/"false"); integer arrays apart.
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::vector<int64_t>> int_arrays;
  const GgufTensorInfo* Find(absl::string_view name) const;
};

inline constexpr int kMaxArrayDepth = 4;

// Parses and validates `buffer` (the whole file). `source` names it in errors.
absl::StatusOr<GgufHeader> ParseGguf(absl::string_view buffer, absl::string_view source);

// True when `buffer` starts with GGUF's magic (how a model file's format is told apart).
bool LooksLikeGguf(absl::string_view buffer);
// True when the file at `path` starts with GGUF's magic (false when it cannot be read).
bool IsGgufPath(const std::string& path);

// A GGUF file mapped read-only; tensors are views into the mapping.
class GgufFile {
 public:
  static absl::StatusOr<std::shared_ptr<GgufFile>> Open(const std::string& path);
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  const GgufHeader& header() const { return header_; }
  absl::string_view Bytes(const GgufTensorInfo& tensor) const;

 private:
  GgufFile(std::string path, MappedFile mapping)
      : path_(std::move(path)), mapping_(std::move(mapping)) {}
  std::string path_;
  MappedFile mapping_;
  GgufHeader header_;
};

}  // namespace raylight::models
