// at::Tensor on top of the safetensors reader: zero-copy views of mapped files, parsing of
// in-memory payloads (wire buffers), and the writer.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/safetensors.h"

namespace raylight::models {

absl::StatusOr<at::ScalarType> ToScalarType(StDtype dtype);
absl::StatusOr<StDtype> FromScalarType(at::ScalarType type);

// A CPU tensor viewing `info`'s bytes in `file`; it keeps the mapping alive. Read-only in
// spirit: the mapping is PROT_READ, so writing through it faults.
// A CPU tensor over `bytes` of a mapped file (`keep` holds the mapping for as long as any view of
// it lives): the zero-copy view the safetensors and GGUF loaders both hand out.
at::Tensor ViewMapped(absl::string_view bytes, std::shared_ptr<const void> keep,
                      at::IntArrayRef shape, at::ScalarType dtype);

absl::StatusOr<at::Tensor> ViewTensor(const std::shared_ptr<SafetensorsFile>& file,
                                      const StTensorInfo& info);

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Parses a payload (e.g. conditioning received over gRPC) into owned CPU tensors.
absl::StatusOr<std::map<std::string, at::Tensor>> ParseTensors(absl::string_view bytes,
                                                               absl::string_view source);

// Serialises tensors (any device; copied to CPU, made contiguous) in the given order.
absl::StatusOr<std::string> SerializeTensors(
    const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

// Writes a file atomically (temporary file, then rename), streaming tensor by tensor so that a
// checkpoint never needs to be assembled in memory.
absl::Status WriteTensors(const std::string& path, const NamedTensors& tensors,
                          const std::map<std::string, std::string>& metadata = {});

}  // namespace raylight::models
