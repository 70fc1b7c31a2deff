// GGUF dequantisation on the GPU: one thread per value, each decoding with the block functions the
// CPU path uses (gguf_blocks.h). Built with --fmad=false so that d * q - m is two rounded steps, as
// in ggml and gguf-py, and the GPU gives the CPU's bits.
#include <cuda_runtime.h>

#include "models/core/ggml_type.h"
#include "models/core/gguf_blocks.h"
#include "models/core/gguf_dequant_cuda.h"

namespace raylight::models {
namespace {

namespace gb = gguf_blocks;

template <typename Out>
__device__ __forceinline__ void Store(Out* out, int64_t index, float value);
template <>
__device__ __forceinline__ void Store<float>(float* out, int64_t index, float value) {
  out[index] = value;
}
template <>
__device__ __forceinline__ void Store<uint16_t>(uint16_t* out, int64_t index, float value) {
  out[index] = gb::FloatToBF16(value);
}

template <int kBlockValues, int kBlockBytes, float (*Decode)(const uint8_t*, int), typename Out>
__global__ void DequantKernel(const uint8_t* __restrict__ blocks, int64_t values,
                              Out* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < values;
       i += stride) {
    const int64_t block = i / kBlockValues;
    const int e = static_cast<int>(i % kBlockValues);
    Store(out, i, Decode(blocks + block * kBlockBytes, e));
  }
}

template <int kBlockValues, int kBlockBytes, float (*Decode)(const uint8_t*, int)>
cudaError_t Launch(const uint8_t* blocks, int64_t num_blocks, void* out, DequantOutput output,
                   cudaStream_t stream) {
  const int64_t values = num_blocks * kBlockValues;
  if (values == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  // Enough blocks to fill the GPU several times over; the loop strides through the rest.
  const int64_t wanted = (values + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(wanted < 65536 ? wanted : 65536);
  if (output == DequantOutput::kFloat32) {
    DequantKernel<kBlockValues, kBlockBytes, Decode>
        <<<grid, kThreads, 0, stream>>>(blocks, values, static_cast<float*>(out));
  } else {
    DequantKernel<kBlockValues, kBlockBytes, Decode>
        <<<grid, kThreads, 0, stream>>>(blocks, values, static_cast<uint16_t*>(out));
  }
  return cudaGetLastError();
}

}  // namespace

int LaunchGgufDequant(uint32_t type_id, const uint8_t* blocks, int64_t num_blocks, void* out,
                      DequantOutput output, void* stream_handle) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kQ4_0:
      return Launch<32, 18, gb::DecodeQ4_0>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ4_1:
      return Launch<32, 20, gb::DecodeQ4_1>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ5_0:
      return Launch<32, 22, gb::DecodeQ5_0>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ5_1:
      return Launch<32, 24, gb::DecodeQ5_1>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ8_0:
      return Launch<32, 34, gb::DecodeQ8_0>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ2_K:
      return Launch<256, 84, gb::DecodeQ2_K>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ3_K:
      return Launch<256, 110, gb::DecodeQ3_K>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ4_K:
      return Launch<256, 144, gb::DecodeQ4_K>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ5_K:
      return Launch<256, 176, gb::DecodeQ5_K>(blocks, num_blocks, out, output, stream);
    case GgmlType::kQ6_K:
      return Launch<256, 210, gb::DecodeQ6_K>(blocks, num_blocks, out, output, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace raylight::models
