// fp8 compute (a job's `compute: fp8`): a model's linear layers as fp8 e4m3 GEMMs. Weights are
// e4m3 with one fp32 scale per output channel, made once at load (from a bf16 checkpoint by
// quantising each row to its own absolute maximum; an fp8-scaled checkpoint's e4m3 bytes are used
// as stored, its per-tensor scale repeated per row). Activations are scaled dynamically per token
// (one amax per row of the input): the tokens of a DiT differ in magnitude by orders (the text
// tokens against the video ones, the first frame against the rest), and one scale for the whole
// tensor would flush the small ones to e4m3's subnormals; per-token scales cost one reduction
// over the row, which the GEMM's rowwise scaling (cuBLASLt / CUTLASS on Hopper, `_scaled_mm`)
// applies in its epilogue for free. The product accumulates in fp32 (no fast accumulation) and
// comes out in the input's dtype.
//
// Error: each operand carries e4m3's 3 mantissa bits, a relative rounding error of at most 2^-4
// per value, random in sign, so a dot product over K terms is off by about 2^-4 / sqrt(3) of its
// typical term per operand: a relative L2 of ~4-5% per layer on Gaussian operands (measured by
// tests/models/fp8_linear_test.cc), which a residual network does not compound layer by layer.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "models/core/weights.h"

namespace raylight::models {

// The largest finite e4m3fn value.
inline constexpr double kFp8E4m3Max = 448.0;

// The name of a weight's per-row scale in a WeightSet: "<module>.weight" ->
// "<module>.weight_scale".
std::string Fp8ScaleName(const std::string& weight_name);

// Whether a block weight is computed in fp8 under `compute: fp8`: a linear layer's weight (a 2-D
// "<module>.weight") whose both sides are multiples of 16 (the fp8 GEMMs' alignment).
bool IsFp8Linear(const std::string& name, at::IntArrayRef shape);

struct Fp8Rows {
  at::Tensor values;  // kFloat8_e4m3fn [N, K]
  at::Tensor scale;   // kFloat [N]: row n's real value = values[n] * scale[n]
};

// `weight` [N, K] (any float dtype) quantised per output channel, on its own device.
Fp8Rows QuantizeFp8Rows(const at::Tensor& weight);

// Rows [begin, end) of a tensor PlacedAsFp8Linear as fp8 compute holds it, on `device`: an
// fp8-scaled file's e4m3 bytes as stored with its scale on every row, anything else in `dtype`
// quantised per row (QuantizeFp8Rows; rows are independent, so a range's are the whole's). The
// whole tensor (end < 0) is materialised on `device`; a range of rows on the CPU (an FSDP shard's
// rows, merging attached LoRA patches into those rows only) and then moved.
Fp8Rows PlaceFp8Rows(const CheckpointTensor& tensor, at::ScalarType dtype, at::Device device,
                     int64_t begin = 0, int64_t end = -1);

// `x` [..., K] per token (its last dimension) to e4m3 with scales [M, 1] (M = the other
// dimensions' product): x's row m ~ values[m] * scale[m]. On a GPU one fused kernel
// (fp8_quant_cuda.h) unless `fused` is false (libtorch's ops: five passes over x; the same bits).
Fp8Rows QuantizeFp8Tokens(const at::Tensor& x, bool fused = true);

// y = x W^T + bias with W = `weight` (e4m3 [N, K]) * `scale` ([N]) and x quantised per token; y
// has x's dtype and shape [..., N]. CUDA: one `_scaled_mm` with rowwise scales (sm89 and later);
// CPU: the same products of the quantised values in fp32 (libtorch's CPU `_scaled_mm` takes one
// scale per tensor only), so the CPU tests check what the GPU computes up to summation order.
at::Tensor Fp8Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scale,
                     const at::Tensor& bias);

// x W^T + b for module `name` of `w` ("<name>.weight", "<name>.bias" when present), over its
// output rows [begin, begin + count) (count < 0: to the last): the models' linear layers, fp8
// compute's e4m3 weights (with the same rows of their scales) or the compute dtype's.
at::Tensor ModuleLinear(const at::Tensor& x, const WeightSet& w, const std::string& name,
                        int64_t begin = 0, int64_t count = -1);

}  // namespace raylight::models
