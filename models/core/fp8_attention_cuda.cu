// fp8 attention's whole-tensor quantisation: one grid-stride pass finds the largest magnitude
// (each block's maximum merged by an atomic max on the float's bits, which order as non-negative
// integers), a second writes the bytes with the scale read on the device; eight values a thread a
// step (one 16-byte load of bf16, one 8-byte store of e4m3) where the count allows. The keys'
// version sums each column in the first pass too (a block's 256 rows in registers and shared
// memory, each chunk's sums stored apart and added in order by a short kernel: the same bits on
// every run) and subtracts the means in the second.
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

// The block's largest of each thread's `m` merged into `*largest` (blockDim.x * blockDim.y
// threads, a multiple of 32, at most 1024).
__device__ __forceinline__ void MergeLargest(float m, float* largest) {
  for (int offset = 16; offset > 0; offset /= 2) {
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  }
  __shared__ float warps[32];
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  const int warp_count = blockDim.x * blockDim.y / 32;
  if (thread % 32 == 0) warps[thread / 32] = m;
  __syncthreads();
  if (thread == 0) {
    for (int w = 1; w < warp_count; ++w) m = fmaxf(m, warps[w]);
    // NaN would not order as an integer; it cannot come from finite inputs.
    atomicMax(reinterpret_cast<int*>(largest), __float_as_int(m));
  }
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
  MergeLargest(m, largest);
}

__device__ __forceinline__ uint8_t ToE4m3(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// Eight bf16 values (one 16-byte load) less their `centre`, times `scale`, as eight e4m3 bytes.
// x - 0 is x exactly, so a zero centre gives the uncentred bytes.
__device__ __forceinline__ uint2 ToE4m3Vector(const uint4& packed, const float (&centre)[kVector],
                                              float scale) {
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
  uint8_t bytes[kVector];
#pragma unroll
  for (int j = 0; j < kVector / 2; ++j) {
    const float2 f = __bfloat1622float2(pairs[j]);
    bytes[2 * j] = ToE4m3((f.x - centre[2 * j]) * scale);
    bytes[2 * j + 1] = ToE4m3((f.y - centre[2 * j + 1]) * scale);
  }
  return *reinterpret_cast<const uint2*>(bytes);
}

__global__ void QuantizeKernel(const __nv_bfloat16* __restrict__ x, int64_t n, const float* largest,
                               float* factors, uint8_t* __restrict__ out) {
  const float amax = *largest;
  const float scale = amax > 0.0f ? kE4m3Max / amax : 1.0f;
  constexpr float kNoCentre[kVector] = {};
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    factors[0] = amax > 0.0f ? amax / kE4m3Max : 1.0f;
    factors[1] = scale;
  }
  const uint4* v = reinterpret_cast<const uint4*>(x);
  uint2* o = reinterpret_cast<uint2*>(out);
  ForEachValue(
      n, [&](int64_t i) { o[i] = ToE4m3Vector(v[i], kNoCentre, scale); },
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

// Keys: kColumnThreads threads across a tile of 8 * kColumnThreads columns, kRowLanes down its
// rows, kChunkRows rows a block.
constexpr int kColumnThreads = 128;
constexpr int kRowLanes = 4;
constexpr int64_t kChunkRows = 256;

int64_t Chunks(int64_t rows) { return (rows + kChunkRows - 1) / kChunkRows; }

// Where the keys' kernels keep their sums: [chunks, batch * width] partial sums, then the
// [batch * width] means, then the largest |k| and the largest |mean|.
struct KeyScratch {
  float* partial;
  float* means;
  float* largest;
  float* largest_mean;
};

KeyScratch KeyScratchAt(float* scratch, int64_t batch, int64_t rows, int64_t width) {
  const int64_t columns = batch * width;
  float* means = scratch + Chunks(rows) * columns;
  return {scratch, means, means + columns, means + columns + 1};
}

// Block (x: column tile, y: row chunk, z: sample): its rows' sum of each column into
// partial[chunk][sample * width + column] (a plain store: the means add the chunks in order, so
// the result does not depend on which block ran first), their largest magnitude merged into
// `*largest`.
__global__ void ColumnSumsKernel(const __nv_bfloat16* __restrict__ k, int64_t rows, int64_t width,
                                 KeyScratch scratch) {
  const int64_t vector = blockIdx.x * static_cast<int64_t>(kColumnThreads) + threadIdx.x;
  const bool inside = vector * kVector < width;
  const int64_t first = blockIdx.y * kChunkRows, last = min(rows, first + kChunkRows);
  const __nv_bfloat16* sample = k + blockIdx.z * rows * width;
  float sum[kVector] = {};
  float m = 0.0f;
  if (inside) {
    for (int64_t r = first + threadIdx.y; r < last; r += kRowLanes) {
      const uint4 packed = *reinterpret_cast<const uint4*>(sample + r * width + vector * kVector);
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
      for (int j = 0; j < kVector / 2; ++j) {
        const float2 f = __bfloat1622float2(pairs[j]);
        sum[2 * j] += f.x;
        sum[2 * j + 1] += f.y;
        m = fmaxf(m, fmaxf(fabsf(f.x), fabsf(f.y)));
      }
    }
  }
  __shared__ float lanes[kRowLanes - 1][kColumnThreads][kVector];
  if (threadIdx.y > 0) {
#pragma unroll
    for (int j = 0; j < kVector; ++j) lanes[threadIdx.y - 1][threadIdx.x][j] = sum[j];
  }
  MergeLargest(m, scratch.largest);  // synchronises the block: the lanes' sums are written
  if (threadIdx.y == 0 && inside) {
    const int64_t columns = static_cast<int64_t>(gridDim.z) * width;
    float* out = scratch.partial + blockIdx.y * columns + blockIdx.z * width + vector * kVector;
#pragma unroll
    for (int j = 0; j < kVector; ++j) {
      float total = sum[j];
      for (int lane = 0; lane < kRowLanes - 1; ++lane) total += lanes[lane][threadIdx.x][j];
      out[j] = total;
    }
  }
}

// Each column's mean (its chunks' sums added in order, over `rows`), and their largest magnitude
// merged into `*largest_mean`.
__global__ void KeyMeansKernel(int64_t columns, int64_t chunks, int64_t rows, KeyScratch scratch) {
  const int64_t column = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  float m = 0.0f;
  if (column < columns) {
    float total = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) total += scratch.partial[c * columns + column];
    const float mean = total / static_cast<float>(rows);
    scratch.means[column] = mean;
    m = fabsf(mean);
  }
  MergeLargest(m, scratch.largest_mean);
}

// The scale that maps the bound amax|k| + max|mean| to 448 (1 for all-zero keys).
__device__ __forceinline__ float KeyScale(const KeyScratch& scratch) {
  const float bound = *scratch.largest + *scratch.largest_mean;
  return bound > 0.0f ? kE4m3Max / bound : 1.0f;
}

// The keys less their sample's column means, times the scale, as e4m3; block 0 writes the factors.
__global__ void QuantizeCenteredKernel(const __nv_bfloat16* __restrict__ k, int64_t rows,
                                       int64_t width, int64_t n, KeyScratch scratch, float* factors,
                                       uint8_t* __restrict__ out) {
  const float scale = KeyScale(scratch);
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    factors[0] = 1.0f / scale;
    factors[1] = scale;
  }
  const float* __restrict__ means = scratch.means;
  const uint4* v = reinterpret_cast<const uint4*>(k);
  uint2* o = reinterpret_cast<uint2*>(out);
  const int64_t per_sample = rows * width;
  ForEachValue(
      n,
      [&](int64_t i) {
        const int64_t at = i * kVector;
        const float4* mean =
            reinterpret_cast<const float4*>(means + (at / per_sample) * width + at % width);
        const float4 low = mean[0], high = mean[1];
        const float centre[kVector] = {low.x, low.y, low.z, low.w, high.x, high.y, high.z, high.w};
        o[i] = ToE4m3Vector(v[i], centre, scale);
      },
      [](int64_t) {});  // width is a multiple of 8: no tail
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

int64_t KeysFp8ScratchFloats(int64_t batch, int64_t rows, int64_t width) {
  return (Chunks(rows) + 1) * batch * width + 2;
}

int LaunchQuantizeKeysFp8(const void* k, int64_t batch, int64_t rows, int64_t width, float* scratch,
                          float* factors, uint8_t* out, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (width % kVector != 0) return static_cast<int>(cudaErrorInvalidValue);
  if (!Aligned(k, 16) || !Aligned(out, 8) || !Aligned(scratch, 16)) {
    return static_cast<int>(cudaErrorMisalignedAddress);
  }
  const KeyScratch parts = KeyScratchAt(scratch, batch, rows, width);
  cudaError_t error = cudaMemsetAsync(parts.largest, 0, 2 * sizeof(float), s);
  if (error != cudaSuccess) return static_cast<int>(error);
  const int64_t columns = batch * width, n = columns * rows;
  if (n == 0) {  // the factors of all-zero keys
    QuantizeCenteredKernel<<<1, 32, 0, s>>>(nullptr, 1, 8, 0, parts, factors, out);
    return static_cast<int>(cudaGetLastError());
  }
  const auto* in = static_cast<const __nv_bfloat16*>(k);
  const dim3 tiles(static_cast<unsigned>((width / kVector + kColumnThreads - 1) / kColumnThreads),
                   static_cast<unsigned>(Chunks(rows)), static_cast<unsigned>(batch));
  ColumnSumsKernel<<<tiles, dim3(kColumnThreads, kRowLanes), 0, s>>>(in, rows, width, parts);
  KeyMeansKernel<<<static_cast<unsigned>((columns + kThreads - 1) / kThreads), kThreads, 0, s>>>(
      columns, Chunks(rows), rows, parts);
  QuantizeCenteredKernel<<<Blocks(n / kVector), kThreads, 0, s>>>(in, rows, width, n, parts,
                                                                  factors, out);
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
