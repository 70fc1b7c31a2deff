// A file mapped read-only into memory: the storage under the safetensors and GGUF readers, whose
// tensors are views of the page cache (nothing is copied until a placement moves them).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace raylight::models {

class MappedFile {
 public:
  // `format` names the reader in errors ("safetensors x: not a regular file").
  static absl::StatusOr<MappedFile> Open(const std::string& path, absl::string_view format);
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  absl::string_view bytes() const { return {data_ == nullptr ? "" : data_, size_}; }

 private:
  MappedFile(const char* data, uint64_t size) : data_(data), size_(size) {}
  const char* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace raylight::models
