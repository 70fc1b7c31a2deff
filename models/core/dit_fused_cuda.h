// The CUDA half of the fused DiT elementwise kernels (dit_fused.h), behind a plain C++ interface
// (no torch, no CUDA headers): dit_fused.cc hands it device pointers and the stream. Each
// returns the launch's cudaError_t (0: launched).
#pragma once

#include <cstdint>

namespace raylight::models {

// out[r, :] = bf16(LN(x[r, :]) * (1 + scale[m, :]) + shift[m, :]) for `rows` rows of `cols`
// fp32 values, m = r / rows_per_modulation (the sample's row of a per-sample modulation, or the
// token's own with 1), LN without affine in fp32 (mean, then the variance about it, both from
// the row; rstd = 1 / sqrt(var + eps)). One block per row: the row is read three times (twice
// from cache) and written once as bf16.
int LaunchModulatedLayerNorm(const float* x, int64_t rows, int64_t cols, const float* shift,
                             const float* scale, int64_t rows_per_modulation, double eps,
                             void* out_bf16, void* stream);

// The residual add before a modulated norm, in the norm's pass: for each row r,
// x[r, :] += branch[r, :] * gate[g, :] (g = r / rows_per_gate; gate null: x[r, :] += branch[r, :]),
// in place in fp32 (branch bf16), then out[r, :] as LaunchModulatedLayerNorm writes it from the
// updated row. The row is read once from memory where the add and the norm read it twice.
int LaunchAddModulatedLayerNorm(float* x, int64_t rows, int64_t cols, const void* branch_bf16,
                                const float* gate, int64_t rows_per_gate, const float* shift,
                                const float* scale, int64_t rows_per_modulation, double eps,
                                void* out_bf16, void* stream);

// q or k of a DiT's self-attention: each row r of `rows` (cols = heads * head_dim bf16 values,
// the projection's output) RMS-normalised over the whole row (Wan's norm across heads) with the
// bf16 `weight` [cols], rounded to bf16, then each head's pairs (2i, 2i+1) rotated by the
// complex64 `rotation` [tokens, head_dim / 2] of the row's token (r % tokens) in fp32 and
// rounded to bf16: the unfused rms_norm, then ApplyRotary, in one pass that reads the row twice
// (once from cache) and writes it once.
int LaunchRmsNormRope(const void* x_bf16, int64_t rows, int64_t cols, const void* weight_bf16,
                      double eps, const float* rotation, int64_t tokens, int64_t head_dim,
                      void* out_bf16, void* stream);

}  // namespace raylight::models
