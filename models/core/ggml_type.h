// ggml's tensor type ids (ggml.h), the ones Raylight's GGUF reader dequantises. A header of its own
// so that the CUDA kernels can name them without the reader's Abseil headers.
#pragma once

#include <cstdint>

namespace raylight::models {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

}  // namespace raylight::models
