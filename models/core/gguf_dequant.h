// GGUF tensors to values: the raw bytes of a tensor (any GgmlType, on the CPU or a CUDA device)
// decoded into a tensor of the compute dtype on the same device. Quantised weights stay quantised
// wherever they are placed and pass through here when a block is acquired.
#pragma once

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "models/core/ggml_type.h"

namespace raylight::models {

// `bytes`: a contiguous kByte tensor holding exactly the tensor's blocks; `shape`: its values'
// shape (torch order). CPU and CUDA give the same bits (one block decoder, gguf_blocks.h).
absl::StatusOr<at::Tensor> DequantizeGguf(const at::Tensor& bytes, GgmlType type,
                                          at::IntArrayRef shape, at::ScalarType dtype);

}  // namespace raylight::models
