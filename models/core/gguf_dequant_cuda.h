// The CUDA half of GGUF dequantisation, behind a plain C++ interface (no torch, no CUDA headers):
// gguf_dequant.cc hands it device pointers and the current stream.
#pragma once

#include <cstdint>

namespace raylight::models {

enum class DequantOutput { kFloat32, kBFloat16 };

// Decodes `num_blocks` blocks of ggml type `type_id` at `blocks` (device memory) into `out`
// (device memory, num_blocks x the type's block values) on `stream` (a cudaStream_t). Returns the
// cudaError_t of the launch (0: launched).
int LaunchGgufDequant(uint32_t type_id, const uint8_t* blocks, int64_t num_blocks, void* out,
                      DequantOutput output, void* stream);

}  // namespace raylight::models
