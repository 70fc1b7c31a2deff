// The CUDA half of fp8 attention (fp8_attention.h): a whole tensor to e4m3 with one scale, the
// keys less their mean to e4m3 with one scale, and e4m3 back to bf16, behind a plain C++ interface
// (no torch, no CUDA headers): fp8_attention.cc hands it device pointers and the stream. The scales
// stay on the device, so nothing waits for the host between the quantisation and cuDNN's attention
// that reads them.
#pragma once

#include <cstdint>

namespace raylight::models {

// `n` bf16 values at `x` (device memory, contiguous) to e4m3 at `out` with one scale for all of
// them: the largest magnitude (a reduction into `factors[0]` through a scratch float at
// `largest`) becomes 448, e4m3's largest normal. Writes factors[0] = amax / 448 (the descale a
// reader multiplies by) and factors[1] = 448 / amax (the scale). All-zero input: both 1. Two
// kernels (the reduction, then the bytes) on `stream`. Returns the launches' cudaError_t (0:
// launched).
int LaunchQuantizeTensorFp8(const void* x, int64_t n, float* largest, float* factors, uint8_t* out,
                            void* stream);

// The keys of fp8 attention, `batch` samples of `rows` rows of `width` bf16 values at `k` (device
// memory, contiguous; width a multiple of 8), less their mean over the rows (per sample and
// column: SageAttention's smoothing, exact under the softmax) to e4m3 at `out`, with one scale:
// the subtraction in fp32 and rounded once, to e4m3. The scale maps amax|k| + max|mean| (a bound
// on |k - mean| read in the same pass as the means, one pass fewer than the exact maximum) to
// 448; e4m3 is a floating-point format, so a scale up to 2x loose costs no precision above its
// subnormals (2^-9 of the largest value). The means are summed in a fixed order: the same keys
// give the same bytes on every run. `scratch`: KeysFp8ScratchFloats(batch, rows, width) floats of
// device memory. Writes factors[0] = the descale, factors[1] = the scale (all-zero keys: both 1).
// Three kernels on `stream` (column sums and the largest magnitude; the means; the bytes).
// Returns the launches' cudaError_t (0: launched).
int64_t KeysFp8ScratchFloats(int64_t batch, int64_t rows, int64_t width);
int LaunchQuantizeKeysFp8(const void* k, int64_t batch, int64_t rows, int64_t width, float* scratch,
                          float* factors, uint8_t* out, void* stream);

// `n` e4m3 values at `x` times `*descale` (device memory) to bf16 at `out`.
int LaunchDequantizeFp8(const uint8_t* x, int64_t n, const float* descale, void* out, void* stream);

}  // namespace raylight::models
