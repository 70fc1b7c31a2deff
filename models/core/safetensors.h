// The one safetensors reader: parses and strictly validates a header against the buffer it
// describes, and maps files read-only so that tensors are zero-copy views of the page cache.
//
// Torch-free on purpose: the parser is what a fuzzer and the runtime can both link without
// libtorch. Tensor views over it live in safetensors_tensors.h.
//
// Validation (each failure names the source and, where there is one, the tensor):
//  - the 8-byte little-endian header length is at most kMaxHeaderBytes and inside the buffer;
//  - the header is well-formed JSON: an object of tensor entries plus an optional string-to-string
//    `__metadata__`;
//  - every entry has a known dtype, a shape of non-negative integers whose element count does not
//    overflow, and data_offsets [begin, end] with begin <= end inside the data section;
//  - end - begin equals element size x element count;
//  - the ranges neither overlap nor leave holes: the data section is exactly covered, as the
//    format specifies.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/core/mapped_file.h"

namespace raylight::models {

enum class StDtype { kF64, kF32, kF16, kBF16, kF8E4M3, kF8E5M2, kI64, kI32, kI16, kI8, kU8, kBool };

// The name used in safetensors headers ("BF16", "F8_E4M3", ...).
absl::string_view StDtypeName(StDtype dtype);
absl::StatusOr<StDtype> ParseStDtype(absl::string_view name);
int64_t StDtypeSize(StDtype dtype);

struct StTensorInfo {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets inside the data section
  uint64_t end = 0;
  int64_t numel() const;
};

struct StHeader {
  std::vector<StTensorInfo> tensors;  // in data order
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts in the buffer
  const StTensorInfo* Find(absl::string_view name) const;
};

inline constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

// Parses and validates `buffer` (the whole file or payload). `source` names it in errors.
absl::StatusOr<StHeader> ParseSafetensors(absl::string_view buffer, absl::string_view source);

// A safetensors file mapped read-only; tensors are views into the mapping.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::shared_ptr<SafetensorsFile>> Open(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const StHeader& header() const { return header_; }
  // The bytes of one tensor (valid while this object lives).
  absl::string_view Bytes(const StTensorInfo& tensor) const;
  uint64_t size() const { return mapping_.bytes().size(); }

 private:
  SafetensorsFile(std::string path, MappedFile mapping)
      : path_(std::move(path)), mapping_(std::move(mapping)) {}
  std::string path_;
  MappedFile mapping_;
  StHeader header_;
};

// Serialises a header for tensors whose bytes follow in the given order (the writer's half).
// Offsets are assigned contiguously; the JSON is padded with spaces to 8-byte alignment.
std::string BuildSafetensorsHeader(const std::vector<StTensorInfo>& tensors,
                                   const std::map<std::string, std::string>& metadata);

}  // namespace raylight::models
