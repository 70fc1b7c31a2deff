// fp8 compute's per-token quantisation in one kernel: a block per row finds the row's largest
// magnitude (a block reduction), then writes each value over the row's scale as e4m3.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "models/core/fp8_quant_cuda.h"

namespace raylight::models {
namespace {

constexpr int kThreads = 256;
constexpr float kE4m3Max = 448.0f;
constexpr float kSmallestScale = 1e-12f;  // the (float) 1e-12 of fp8_linear.cc

__device__ __forceinline__ float Load(const __nv_bfloat16* x, int64_t i) {
  return __bfloat162float(x[i]);
}
__device__ __forceinline__ float Load(const float* x, int64_t i) { return x[i]; }

template <typename In>
__global__ void QuantizeRowsKernel(const In* __restrict__ x, int64_t cols,
                                   uint8_t* __restrict__ out, float* __restrict__ scale) {
  const int64_t row = blockIdx.x;
  const In* in = x + row * cols;
  float largest = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads)
    largest = fmaxf(largest, fabsf(Load(in, i)));
  // The block's maximum: within each warp, then across the warps' through shared memory.
  for (int offset = 16; offset > 0; offset /= 2) {
    largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
  }
  __shared__ float warps[kThreads / 32];
  __shared__ float row_scale;
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = largest;
  __syncthreads();
  if (threadIdx.x == 0) {
    float block = warps[0];
    for (int w = 1; w < kThreads / 32; ++w) block = fmaxf(block, warps[w]);
    row_scale = fmaxf(block * (1.0f / kE4m3Max), kSmallestScale);
    scale[row] = row_scale;
  }
  __syncthreads();
  const float s = row_scale;
  uint8_t* o = out + row * cols;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float v = fminf(fmaxf(__fdiv_rn(Load(in, i), s), -kE4m3Max), kE4m3Max);
    o[i] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
  }
}

}  // namespace

int LaunchQuantizeRowsFp8(const void* x, Fp8QuantInput input, int64_t rows, int64_t cols,
                          uint8_t* out, float* scale, void* stream) {
  if (rows == 0) return 0;
  const auto s = static_cast<cudaStream_t>(stream);
  const dim3 grid(static_cast<unsigned>(rows));
  if (input == Fp8QuantInput::kBFloat16) {
    QuantizeRowsKernel<<<grid, kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x), cols, out,
                                                 scale);
  } else {
    QuantizeRowsKernel<<<grid, kThreads, 0, s>>>(static_cast<const float*>(x), cols, out, scale);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace raylight::models
