// fp8 compute (a job's `compute: fp8`): a model's linear layers as fp8 e4m3 GEMMs. Weights are
// e4m3 with one fp32 scale per output channel, made once at load (from a bf16 checkpoint by
// quantising each row to its own absolute maximum; an fp8-scaled checkpoint's e4m3 bytes are used
// as stored, its per-tensor scale repeated per row). Activations are scaled dynamically per token
// (one amax per row of the input): the tokens of a DiT differ in magnitude by orders (the text
// tokens against the video ones, the first frame against the rest), and one scale for the whole
// tensor would flush the small ones to e4m3's subnormals; per-token scales cost one reduction
// over the row, which the GEMM's rowwise scaling (cuBLASLt / CUTLASS on Hopper, `_scaled_mm`)
// applies in its epilogue for free. On Hopper the GEMM accumulates in the tensor cores' own
// accumulator (`_scaled_mm`'s fast accumulation, promoted to fp32 at the end of each tile's
// k-loop rather than every few k-steps): 1.14-1.30x the GEMM's speed on Wan 14B's layers for a
// relative L2 of 0.002-0.003 from the fp32 product of the same e4m3 values, against the 0.0375 the
// e4m3 operands themselves cost (tests/bench/fp8_gemm_rows.py, BENCHMARKS.md). The product comes
// out in the input's dtype.
//
// Error: each operand carries e4m3's 3 mantissa bits, a relative rounding error of at most 2^-4
// per value, random in sign, so a dot product over K terms is off by about 2^-4 / sqrt(3) of its
// typical term per operand: a relative L2 of ~4-5% per layer on Gaussian operands (measured by
// tests/models/fp8_linear_test.cc), which a residual network does not compound layer by layer.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/core/fp8_quant_cuda.h"
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
// dimensions' product): x's row m ~ values[m] * scale[m], with `activation` applied to x first.
// On a GPU one fused kernel (fp8_quant_cuda.h) unless `fused` is false (libtorch's ops: the
// activation, then five passes over x).
Fp8Rows QuantizeFp8Tokens(const at::Tensor& x, bool fused = true,
                          Fp8QuantActivation activation = Fp8QuantActivation::kNone);

// A linear layer's input, with the activation it passes through first (the FFN's hidden GELU),
// quantised at most once however many fp8 linears read it: q, k and v of a block read one normed
// input, and the FFN's GELU and its quantisation are one pass on a GPU. Not thread-safe (one
// block's forward on one thread uses it).
class LinearInput {
 public:
  explicit LinearInput(at::Tensor x, Fp8QuantActivation activation = Fp8QuantActivation::kNone);
  // An input that is e4m3 already (fp8 attention's output): fp8 linears read `tokens` (the rows
  // of a [..., K] tensor of shape `sizes`, row-major) as they are; a bf16 / fp32 linear reads
  // `dequantize()` in `dtype`, made on the first call.
  LinearInput(Fp8Rows tokens, std::vector<int64_t> sizes, at::ScalarType dtype,
              std::function<at::Tensor()> dequantize);
  // The input as a bf16 / fp32 linear reads it: the activation applied.
  at::Tensor Activated() const;
  // Its tokens quantised (QuantizeFp8Tokens), made on the first call.
  const Fp8Rows& Tokens() const;
  // Rows [begin, begin + count) of the first dimension (a micro-batch's samples), sharing the
  // quantised tokens already made.
  LinearInput Narrow(int64_t begin, int64_t count) const;
  // The shape and dtype of the layer's input.
  at::IntArrayRef sizes() const { return sizes_; }
  at::ScalarType scalar_type() const { return dtype_; }

 private:
  // x before the activation (dequantised on the first call for an e4m3 input).
  const at::Tensor& Value() const;

  mutable at::Tensor x_;
  std::function<at::Tensor()> dequantize_;
  std::vector<int64_t> sizes_;
  at::ScalarType dtype_;
  Fp8QuantActivation activation_ = Fp8QuantActivation::kNone;
  mutable std::optional<Fp8Rows> tokens_;
};

// y = x W^T + bias with W = `weight` (e4m3 [N, K]) * `scale` ([N]) and x quantised per token; y
// has x's dtype and shape [..., N]. CUDA: one `_scaled_mm` with rowwise scales (sm89 and later);
// CPU: the same products of the quantised values in fp32 (libtorch's CPU `_scaled_mm` takes one
// scale per tensor only), so the CPU tests check what the GPU computes up to summation order.
at::Tensor Fp8Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scale,
                     const at::Tensor& bias);
// The same for an input whose tokens are (or will be) quantised once for several layers.
at::Tensor Fp8Linear(const LinearInput& x, const at::Tensor& weight, const at::Tensor& scale,
                     const at::Tensor& bias);

// x W^T + b for module `name` of `w` ("<name>.weight", "<name>.bias" when present), over its
// output rows [begin, begin + count) (count < 0: to the last): the models' linear layers, fp8
// compute's e4m3 weights (with the same rows of their scales) or the compute dtype's.
at::Tensor ModuleLinear(const at::Tensor& x, const WeightSet& w, const std::string& name,
                        int64_t begin = 0, int64_t count = -1);
at::Tensor ModuleLinear(const LinearInput& x, const WeightSet& w, const std::string& name,
                        int64_t begin = 0, int64_t count = -1);

}  // namespace raylight::models
