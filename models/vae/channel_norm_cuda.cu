// The Wan VAE's channel RMS norm, its scale and gamma, and the SiLU after it, in one pass: read
// once for the sum of squares, once more (from cache) to write. Unfused, the same chain is six
// full-tensor passes with float32 temporaries and costs as much as the convolution it feeds.
// Two shapes of kernel: with channels contiguous (channels-last), one warp per position and
// lanes across channels; otherwise one thread per position, consecutive threads on consecutive
// positions so that each channel's read is coalesced.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "models/vae/channel_norm_cuda.h"

namespace raylight::models::vae {
namespace {

template <typename T>
__device__ __forceinline__ float Load(const T* p);
template <>
__device__ __forceinline__ float Load<float>(const float* p) {
  return *p;
}
template <>
__device__ __forceinline__ float Load<__nv_bfloat16>(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}
template <>
__device__ __forceinline__ float Load<__half>(const __half* p) {
  return __half2float(*p);
}

template <typename T>
__device__ __forceinline__ void Store(T* p, float v);
template <>
__device__ __forceinline__ void Store<float>(float* p, float v) {
  *p = v;
}
template <>
__device__ __forceinline__ void Store<__nv_bfloat16>(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16(v);
}
template <>
__device__ __forceinline__ void Store<__half>(__half* p, float v) {
  *p = __float2half(v);
}

__device__ __forceinline__ float Finish(float value, bool silu) {
  return silu ? value / (1.0f + __expf(-value)) : value;
}

// The element offsets of position `pos` in the input and the output.
__device__ __forceinline__ void Offsets(const ChannelNormLayout& l, int64_t pos, int64_t* in,
                                        int64_t* out) {
  int64_t i = 0, o = 0;
  for (int d = 3; d >= 0; --d) {
    const int64_t index = pos % l.sizes[d];
    pos /= l.sizes[d];
    i += index * l.in_strides[d];
    o += index * l.out_strides[d];
  }
  *in = i;
  *out = o;
}

template <typename T>
__global__ void WarpPerPosition(const T* __restrict__ in, T* __restrict__ out,
                                const float* __restrict__ gamma, ChannelNormLayout l,
                                int64_t positions, float scale, float eps, bool silu) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t pos = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       pos < positions; pos += warps) {
    int64_t in_offset, out_offset;
    Offsets(l, pos, &in_offset, &out_offset);
    const T* x = in + in_offset;
    float sum = 0.0f;
    for (int64_t c = lane; c < l.channels; c += 32) {
      const float v = Load(x + c);
      sum += v * v;
    }
    for (int shift = 16; shift > 0; shift /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, shift);
    const float factor = scale / fmaxf(sqrtf(sum), eps);
    T* y = out + out_offset;
    for (int64_t c = lane; c < l.channels; c += 32) {
      Store(y + c, Finish(Load(x + c) * factor * gamma[c], silu));
    }
  }
}

template <typename T>
__global__ void ThreadPerPosition(const T* __restrict__ in, T* __restrict__ out,
                                  const float* __restrict__ gamma, ChannelNormLayout l,
                                  int64_t positions, float scale, float eps, bool silu) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t pos = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pos < positions;
       pos += stride) {
    int64_t in_offset, out_offset;
    Offsets(l, pos, &in_offset, &out_offset);
    const T* x = in + in_offset;
    float sum = 0.0f;
    for (int64_t c = 0; c < l.channels; ++c) {
      const float v = Load(x + c * l.in_channel_stride);
      sum += v * v;
    }
    const float factor = scale / fmaxf(sqrtf(sum), eps);
    T* y = out + out_offset;
    for (int64_t c = 0; c < l.channels; ++c) {
      Store(y + c * l.out_channel_stride,
            Finish(Load(x + c * l.in_channel_stride) * factor * gamma[c], silu));
    }
  }
}

template <typename T>
cudaError_t Launch(const void* in, void* out, const float* gamma, const ChannelNormLayout& l,
                   float scale, float eps, bool silu, cudaStream_t stream) {
  const int64_t positions = l.sizes[0] * l.sizes[1] * l.sizes[2] * l.sizes[3];
  if (positions == 0 || l.channels == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  // Enough blocks to fill the GPU many times over; the loops stride through the rest.
  constexpr int64_t kMaxBlocks = 1 << 20;
  const bool contiguous_channels = l.in_channel_stride == 1 && l.out_channel_stride == 1;
  const int64_t per_block = contiguous_channels ? kThreads / 32 : kThreads;
  const int64_t wanted = (positions + per_block - 1) / per_block;
  const unsigned grid = static_cast<unsigned>(wanted < kMaxBlocks ? wanted : kMaxBlocks);
  const T* x = static_cast<const T*>(in);
  T* y = static_cast<T*>(out);
  if (contiguous_channels) {
    WarpPerPosition<T><<<grid, kThreads, 0, stream>>>(x, y, gamma, l, positions, scale, eps, silu);
  } else {
    ThreadPerPosition<T>
        <<<grid, kThreads, 0, stream>>>(x, y, gamma, l, positions, scale, eps, silu);
  }
  return cudaGetLastError();
}

}  // namespace

int LaunchChannelRmsNorm(const void* in, void* out, const float* gamma,
                         const ChannelNormLayout& layout, float scale, float eps, bool silu,
                         NormElement element, void* stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (element) {
    case NormElement::kFloat32:
      return Launch<float>(in, out, gamma, layout, scale, eps, silu, stream);
    case NormElement::kBFloat16:
      return Launch<__nv_bfloat16>(in, out, gamma, layout, scale, eps, silu, stream);
    case NormElement::kFloat16:
      return Launch<__half>(in, out, gamma, layout, scale, eps, silu, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace raylight::models::vae
