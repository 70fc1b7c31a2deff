// The CUDA half of fp8 compute's per-token quantisation (fp8_linear.h), behind a plain C++
// interface (no torch, no CUDA headers): fp8_linear.cc hands it device pointers and the stream.
#pragma once

#include <cstdint>

namespace raylight::models {

enum class Fp8QuantInput { kBFloat16, kFloat32 };

// What is applied to each value before it is quantised: nothing, or GELU with the tanh
// approximation computed as libtorch's CUDA kernel computes it (fp32 arithmetic, the result
// rounded to the input's dtype), so that the FFN's activation and its quantisation are one pass.
enum class Fp8QuantActivation { kNone, kGeluTanh };

// Each of `rows` rows of `cols` values at `x` (row-major, device memory) to e4m3 at `out` (same
// layout, one byte a value) with its scale at `scale[row]` = max(amax(|row|) * (1 / 448), 1e-12)
// (float arithmetic), the values divided by it, clamped to +-448 and rounded to nearest even: the
// unfused libtorch ops' arithmetic (QuantizeFp8Tokens), in one kernel that reads the row twice (the
// second time from cache) and writes each byte once; `activation` is applied to each value first.
// Returns the launch's cudaError_t (0: launched).
int LaunchQuantizeRowsFp8(const void* x, Fp8QuantInput input, Fp8QuantActivation activation,
                          int64_t rows, int64_t cols, uint8_t* out, float* scale, void* stream);

}  // namespace raylight::models
