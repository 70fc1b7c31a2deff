// fp8 compute's per-token quantisation in one kernel: a block per row finds the row's largest
// magnitude (a block reduction), then writes each value over the row's scale as e4m3. With GELU
// the activation is computed in both passes (arithmetic is cheaper than keeping the row).
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

// A float as the input's dtype would hold it (the unfused GELU's output dtype).
__device__ __forceinline__ float RoundAs(const __nv_bfloat16*, float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}
__device__ __forceinline__ float RoundAs(const float*, float v) { return v; }

// libtorch's tanh-approximated GELU, term for term (ActivationGeluKernel.cu): the same constants
// (kBeta rounded from double) and the same order of operations, so that the compiler's
// contractions match and the values are the unfused op's.
__device__ __forceinline__ float GeluTanh(float x) {
  constexpr float kBeta = M_SQRT2 * M_2_SQRTPI * float(0.5);
  constexpr float kKappa = 0.044715;
  const float x_cube = x * x * x;
  const float inner = kBeta * (x + kKappa * x_cube);
  return float(0.5) * x * (float(1) + tanhf(inner));
}

template <bool kGelu, typename In>
__device__ __forceinline__ float Value(const In* in, int64_t i) {
  if constexpr (kGelu) {
    return RoundAs(in, GeluTanh(Load(in, i)));
  } else {
    return Load(in, i);
  }
}

template <bool kGelu, typename In>
__global__ void QuantizeRowsKernel(const In* __restrict__ x, int64_t cols,
                                   uint8_t* __restrict__ out, float* __restrict__ scale) {
  const int64_t row = blockIdx.x;
  const In* in = x + row * cols;
  float largest = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads)
    largest = fmaxf(largest, fabsf(Value<kGelu>(in, i)));
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
    const float v = fminf(fmaxf(__fdiv_rn(Value<kGelu>(in, i), s), -kE4m3Max), kE4m3Max);
    o[i] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
  }
}

template <typename In>
void Launch(const In* x, Fp8QuantActivation activation, int64_t rows, int64_t cols, uint8_t* out,
            float* scale, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(rows));
  if (activation == Fp8QuantActivation::kGeluTanh) {
    QuantizeRowsKernel<true><<<grid, kThreads, 0, stream>>>(x, cols, out, scale);
  } else {
    QuantizeRowsKernel<false><<<grid, kThreads, 0, stream>>>(x, cols, out, scale);
  }
}

}  // namespace

int LaunchQuantizeRowsFp8(const void* x, Fp8QuantInput input, Fp8QuantActivation activation,
                          int64_t rows, int64_t cols, uint8_t* out, float* scale, void* stream) {
  if (rows == 0) return 0;
  const auto s = static_cast<cudaStream_t>(stream);
  if (input == Fp8QuantInput::kBFloat16) {
    Launch(static_cast<const __nv_bfloat16*>(x), activation, rows, cols, out, scale, s);
  } else {
    Launch(static_cast<const float*>(x), activation, rows, cols, out, scale, s);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace raylight::models
