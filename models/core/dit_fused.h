// Fused elementwise kernels of the DiT blocks (issue #27, item 1) on CUDA: the chains of small
// passes around the GEMMs (a norm, a modulation, a cast; a norm, a rotation, two casts) as one
// pass each, and the FFN's GELU in its GEMM's epilogue. The unfused ATen chains stay the reference
// and the path everywhere else (CPU, other dtypes, shapes these do not take): each function returns
// an undefined tensor where it does not apply, and the caller runs the chain.
//
// On by default (SetFusedKernels, or RAYLIGHT_FUSED_KERNELS=0 in the environment, turns them
// off): they agree with the chains within bf16 rounding (the norm's statistics summed in another
// order and, for the RoPE, the complex product's contraction may move the last bit of an element;
// relative L2 under 2e-3; the GELU epilogue rounds once where the chain rounds twice, so it is
// nearer fp32 than the chain: gpu tests in tests/models/dit_fused_test.cc).
#pragma once

#include <ATen/ATen.h>

namespace raylight::models {

// Whether the forwards use the fused kernels (process-wide).
bool FusedKernels();
void SetFusedKernels(bool on);

// bf16(LayerNorm(x) * (1 + scale) + shift): x fp32 [B, L, D] (contiguous), shift and scale fp32
// [B, 1, D] (a sample's) or [B, L, D] (a token's); `dtype` must be bf16.
at::Tensor FusedModulatedLayerNorm(const at::Tensor& x, const at::Tensor& shift,
                                   const at::Tensor& scale, double eps, at::ScalarType dtype);

// x += branch * gate (gate undefined: x += branch), in place, then FusedModulatedLayerNorm of the
// updated x, in one pass over x: a block's residual add and the norm after it. branch bf16 [B, L,
// D] (contiguous), gate fp32 [B, 1, D] or [B, L, D]; x, shift, scale as FusedModulatedLayerNorm
// takes them. Where it does not apply it returns an undefined tensor and leaves x as it was. The
// add is one fused multiply-add in fp32 where the chain's addcmul may round the product first:
// within one fp32 rounding of the chain's x.
at::Tensor FusedAddModulatedLayerNorm(const at::Tensor& x, const at::Tensor& branch,
                                      const at::Tensor& gate, const at::Tensor& shift,
                                      const at::Tensor& scale, double eps, at::ScalarType dtype);

// RoPE(RMSNorm(x) over the whole row, with `weight`) split into `heads`: x bf16 [B, L, D]
// (contiguous), weight bf16 [D], rotation complex64 [L, head_dim / 2] (rope tables of this rank's
// rows) -> bf16 [B, L, heads, head_dim].
at::Tensor FusedRmsNormRope(const at::Tensor& x, const at::Tensor& weight, double eps,
                            const at::Tensor& rotation, int64_t heads);

// gelu_tanh(x W^T + bias) as one cuBLASLt GEMM with the GELU in its epilogue (at::
// _addmm_activation): the FFN's first linear without the pass over its [tokens, ffn_dim] output
// (4x the model width) that the separate GELU reads and writes. x [..., K] and `weight` [N, K]
// bf16 or fp16 on a GPU, `bias` [N] of their dtype. The epilogue applies the GELU to the fp32
// accumulator and rounds once, where the chain rounds the linear's output and then the GELU's:
// within one bf16 rounding of the chain.
at::Tensor FusedLinearGelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace raylight::models
