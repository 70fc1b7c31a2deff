// Device helpers of the kernels that quantise rows for fp8 compute (fp8_quant_cuda.cu, and the
// fused norm that quantises its own output, dit_fused_cuda.cu): one rounding everywhere, so that a
// fused kernel's bytes are those of the norm followed by QuantizeFp8Tokens (fp8_linear.h).
#pragma once

#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::models::fp8_device {

inline constexpr float kE4m3Max = 448.0f;
inline constexpr float kSmallestScale = 1e-12f;  // the (float) 1e-12 of fp8_linear.cc

// The largest of `value` over a block of kThreads threads (a multiple of 32), on every thread.
template <int kThreads>
__device__ __forceinline__ float BlockMax(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  __shared__ float warps[kThreads / 32];
  __shared__ float largest;
  __syncthreads();  // a previous call's readers of `largest` are done
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    float block = warps[0];
    for (int w = 1; w < kThreads / 32; ++w) block = fmaxf(block, warps[w]);
    largest = block;
  }
  __syncthreads();
  return largest;
}

// A row's scale from its largest magnitude: amax * (1 / 448), as libtorch's division by the
// scalar 448 computes it, at least kSmallestScale.
__device__ __forceinline__ float RowScale(float amax) {
  return fmaxf(amax * (1.0f / kE4m3Max), kSmallestScale);
}

// value / scale, clamped to +-448 and rounded to the nearest e4m3 (ties to even): the byte.
__device__ __forceinline__ uint8_t E4m3Byte(float value, float scale) {
  const float v = fminf(fmaxf(__fdiv_rn(value, scale), -kE4m3Max), kE4m3Max);
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

}  // namespace raylight::models::fp8_device
