// The fused DiT elementwise kernels: a block per row reduces the row (a sum within each warp,
// then across the warps through shared memory), then writes the row once.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "models/core/dit_fused_cuda.h"

namespace raylight::models {
namespace {

constexpr int kThreads = 256;

// The sum of `value` over the block, on every thread.
__device__ __forceinline__ float BlockSum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  __shared__ float warps[kThreads / 32];
  __shared__ float total;
  __syncthreads();  // a previous call's readers of `total` are done
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) sum += warps[w];
    total = sum;
  }
  __syncthreads();
  return total;
}

// LayerNorm of the row at `in` (fp32, `cols` values) as ModulatedLayerNormKernel's comment says,
// modulated and written to `o`; `sum` is this thread's share of the row's sum.
__device__ __forceinline__ void NormRow(const float* in, int64_t cols, float sum, const float* sh,
                                        const float* sc, float eps, __nv_bfloat16* o) {
  const float mean = BlockSum(sum) / static_cast<float>(cols);
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float d = in[i] - mean;
    squares += d * d;
  }
  const float rstd = rsqrtf(BlockSum(squares) / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float normed = (in[i] - mean) * rstd;
    o[i] = __float2bfloat16_rn(fmaf(normed, 1.0f + sc[i], sh[i]));
  }
}

__global__ void ModulatedLayerNormKernel(const float* __restrict__ x, int64_t cols,
                                         const float* __restrict__ shift,
                                         const float* __restrict__ scale,
                                         int64_t rows_per_modulation, float eps,
                                         __nv_bfloat16* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const float* in = x + row * cols;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) sum += in[i];
  const int64_t m = row / rows_per_modulation;
  NormRow(in, cols, sum, shift + m * cols, scale + m * cols, eps, out + row * cols);
}

__global__ void AddModulatedLayerNormKernel(float* __restrict__ x, int64_t cols,
                                            const __nv_bfloat16* __restrict__ branch,
                                            const float* __restrict__ gate, int64_t rows_per_gate,
                                            const float* __restrict__ shift,
                                            const float* __restrict__ scale,
                                            int64_t rows_per_modulation, float eps,
                                            __nv_bfloat16* __restrict__ out) {
  const int64_t row = blockIdx.x;
  float* in = x + row * cols;
  const __nv_bfloat16* add = branch + row * cols;
  const float* g = gate == nullptr ? nullptr : gate + (row / rows_per_gate) * cols;
  float sum = 0.0f;
  // Each thread reads back below only what it wrote here: no synchronisation needed.
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) {
    const float b = __bfloat162float(add[i]);
    const float v = g == nullptr ? in[i] + b : fmaf(b, g[i], in[i]);
    in[i] = v;
    sum += v;
  }
  const int64_t m = row / rows_per_modulation;
  NormRow(in, cols, sum, shift + m * cols, scale + m * cols, eps, out + row * cols);
}

__global__ void RmsNormRopeKernel(const __nv_bfloat162* __restrict__ x, int64_t pairs,
                                  const __nv_bfloat162* __restrict__ weight, float eps,
                                  const float2* __restrict__ rotation, int64_t tokens,
                                  int64_t half_head, __nv_bfloat162* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const __nv_bfloat162* in = x + row * pairs;
  float squares = 0.0f;
  for (int64_t p = threadIdx.x; p < pairs; p += kThreads) {
    const float2 v = __bfloat1622float2(in[p]);
    squares += v.x * v.x + v.y * v.y;
  }
  const float rstd = rsqrtf(BlockSum(squares) / static_cast<float>(2 * pairs) + eps);
  const float2* turn = rotation + (row % tokens) * half_head;
  __nv_bfloat162* o = out + row * pairs;
  for (int64_t p = threadIdx.x; p < pairs; p += kThreads) {
    const float2 v = __bfloat1622float2(in[p]);
    const float2 w = __bfloat1622float2(weight[p]);
    // The norm's output as the unfused rms_norm leaves it: in bf16.
    const float a = __bfloat162float(__float2bfloat16_rn(v.x * rstd * w.x));
    const float b = __bfloat162float(__float2bfloat16_rn(v.y * rstd * w.y));
    const float2 r = turn[p % half_head];  // (cos, sin) of the pair's angle
    o[p] = __floats2bfloat162_rn(a * r.x - b * r.y, a * r.y + b * r.x);
  }
}

}  // namespace

int LaunchModulatedLayerNorm(const float* x, int64_t rows, int64_t cols, const float* shift,
                             const float* scale, int64_t rows_per_modulation, double eps,
                             void* out_bf16, void* stream) {
  if (rows == 0) return 0;
  ModulatedLayerNormKernel<<<static_cast<unsigned>(rows), kThreads, 0,
                             static_cast<cudaStream_t>(stream)>>>(
      x, cols, shift, scale, rows_per_modulation, static_cast<float>(eps),
      static_cast<__nv_bfloat16*>(out_bf16));
  return static_cast<int>(cudaGetLastError());
}

int LaunchAddModulatedLayerNorm(float* x, int64_t rows, int64_t cols, const void* branch_bf16,
                                const float* gate, int64_t rows_per_gate, const float* shift,
                                const float* scale, int64_t rows_per_modulation, double eps,
                                void* out_bf16, void* stream) {
  if (rows == 0) return 0;
  AddModulatedLayerNormKernel<<<static_cast<unsigned>(rows), kThreads, 0,
                                static_cast<cudaStream_t>(stream)>>>(
      x, cols, static_cast<const __nv_bfloat16*>(branch_bf16), gate, rows_per_gate, shift, scale,
      rows_per_modulation, static_cast<float>(eps), static_cast<__nv_bfloat16*>(out_bf16));
  return static_cast<int>(cudaGetLastError());
}

int LaunchRmsNormRope(const void* x_bf16, int64_t rows, int64_t cols, const void* weight_bf16,
                      double eps, const float* rotation, int64_t tokens, int64_t head_dim,
                      void* out_bf16, void* stream) {
  if (rows == 0) return 0;
  RmsNormRopeKernel<<<static_cast<unsigned>(rows), kThreads, 0,
                      static_cast<cudaStream_t>(stream)>>>(
      static_cast<const __nv_bfloat162*>(x_bf16), cols / 2,
      static_cast<const __nv_bfloat162*>(weight_bf16), static_cast<float>(eps),
      reinterpret_cast<const float2*>(rotation), tokens, head_dim / 2,
      static_cast<__nv_bfloat162*>(out_bf16));
  return static_cast<int>(cudaGetLastError());
}

}  // namespace raylight::models
