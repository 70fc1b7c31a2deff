// fp8 attention's whole-tensor quantisation: one grid-stride pass finds the largest magnitude
// (each block's maximum merged by an atomic max on the float's bits, which order as non-negative
// integers), a second writes the bytes with the scale read on the device; eight values a thread a
// step (one 16-byte load of bf16, one 8-byte store of e4m3) where the count allows.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "models/core/fp8_attention_cuda.h"

namespace raylight::models {
namespace {

constexpr int kThreads = 256;
constexpr int kVector = 8;
constexpr float kE4m3Max = 448.0f;

int Blocks(int64_t work) {
  // Enough blocks to fill every SM of the largest cards a few times over, no more: each thread
  // strides over the rest.
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<int>(std::clamp<int64_t>(blocks, 1, 4096));
}

// Calls vector(i) for each whole group i of kVector values and scalar(j) for each value j after
// them, the grid's threads striding over both.
template <typename Vector, typename Scalar>
__device__ __forceinline__ void ForEachValue(int64_t n, Vector vector, Scalar scalar) {
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t vectors = n / kVector;
  for (int64_t i = first; i < vectors; i += stride) vector(i);
  for (int64_t j = vectors * kVector + first; j < n; j += stride) scalar(j);
}

__global__ void AbsMaxKernel(const __nv_bfloat16* __restrict__ x, int64_t n, float* largest) {
  float m = 0.0f;
  const uint4* v = reinterpret_cast<const uint4*>(x);
  ForEachValue(
      n,
      [&](int64_t i) {
        const uint4 packed = v[i];
        const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
        for (int j = 0; j < kVector / 2; ++j) {
          const float2 f = __bfloat1622float2(pairs[j]);
          m = fmaxf(m, fmaxf(fabsf(f.x), fabsf(f.y)));
        }
      },
      [&](int64_t j) { m = fmaxf(m, fabsf(__bfloat162float(x[j]))); });
  for (int offset = 16; offset > 0; offset /= 2) {
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  }
  __shared__ float warps[kThreads / 32];
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, warps[w]);
    // NaN would not order as an integer; it cannot come from finite inputs.
    atomicMax(reinterpret_cast<int*>(largest), __float_as_int(m));
  }
}

__device__ __forceinline__ uint8_t ToE4m3(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

__global__ void QuantizeKernel(const __nv_bfloat16* __restrict__ x, int64_t n, const float* largest,
                               float* factors, uint8_t* __restrict__ out) {
  const float amax = *largest;
  const float scale = amax > 0.0f ? kE4m3Max / amax : 1.0f;
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    factors[0] = amax > 0.0f ? amax / kE4m3Max : 1.0f;
    factors[1] = scale;
  }
  const uint4* v = reinterpret_cast<const uint4*>(x);
  uint2* o = reinterpret_cast<uint2*>(out);
  ForEachValue(
      n,
      [&](int64_t i) {
        const uint4 packed = v[i];
        const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
        uint8_t bytes[kVector];
#pragma unroll
        for (int j = 0; j < kVector / 2; ++j) {
          const float2 f = __bfloat1622float2(pairs[j]);
          bytes[2 * j] = ToE4m3(f.x * scale);
          bytes[2 * j + 1] = ToE4m3(f.y * scale);
        }
        o[i] = *reinterpret_cast<const uint2*>(bytes);
      },
      [&](int64_t j) { out[j] = ToE4m3(__bfloat162float(x[j]) * scale); });
}

__global__ void DequantizeKernel(const uint8_t* __restrict__ x, int64_t n, const float* descale,
                                 __nv_bfloat16* __restrict__ out) {
  const float d = *descale;
  const uint2* v = reinterpret_cast<const uint2*>(x);
  uint4* o = reinterpret_cast<uint4*>(out);
  ForEachValue(
      n,
      [&](int64_t i) {
        const uint2 packed = v[i];
        const __nv_fp8_storage_t* bytes = reinterpret_cast<const __nv_fp8_storage_t*>(&packed);
        __nv_bfloat162 pairs[kVector / 2];
#pragma unroll
        for (int j = 0; j < kVector / 2; ++j) {
          const __half2 h = __nv_cvt_fp8x2_to_halfraw2(
              static_cast<__nv_fp8x2_storage_t>(bytes[2 * j] | (bytes[2 * j + 1] << 8)), __NV_E4M3);
          const float2 f = __half22float2(h);
          pairs[j] = __floats2bfloat162_rn(f.x * d, f.y * d);
        }
        o[i] = *reinterpret_cast<const uint4*>(pairs);
      },
      [&](int64_t j) {
        const __half h = __nv_cvt_fp8_to_halfraw(x[j], __NV_E4M3);
        out[j] = __float2bfloat16(__half2float(h) * d);
      });
}

bool Aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

int LaunchQuantizeTensorFp8(const void* x, int64_t n, float* largest, float* factors, uint8_t* out,
                            void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (!Aligned(x, 16) || !Aligned(out, 8)) return static_cast<int>(cudaErrorMisalignedAddress);
  cudaError_t error = cudaMemsetAsync(largest, 0, sizeof(float), s);
  if (error != cudaSuccess) return static_cast<int>(error);
  const int blocks = Blocks(std::max<int64_t>(n / kVector, 1));
  const auto* in = static_cast<const __nv_bfloat16*>(x);
  AbsMaxKernel<<<blocks, kThreads, 0, s>>>(in, n, largest);
  QuantizeKernel<<<blocks, kThreads, 0, s>>>(in, n, largest, factors, out);
  return static_cast<int>(cudaGetLastError());
}

int LaunchDequantizeFp8(const uint8_t* x, int64_t n, const float* descale, void* out,
                        void* stream) {
  if (!Aligned(x, 8) || !Aligned(out, 16)) return static_cast<int>(cudaErrorMisalignedAddress);
  const int blocks = Blocks(std::max<int64_t>(n / kVector, 1));
  DequantizeKernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, n, descale, static_cast<__nv_bfloat16*>(out));
  return static_cast<int>(cudaGetLastError());
}

}  // namespace raylight::models
