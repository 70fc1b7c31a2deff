// fp8 attention (a job's `attention: fp8`, issue #27): softmax(q k^T / sqrt(D)) v with q, k, v,
// the probabilities and the output as fp8 e4m3, on cuDNN's fused fp8 attention for Hopper and
// newer (through cuDNN's C++ graph API, cudnn_frontend). The alternative the issue names,
// SageAttention (int8 q k^T with k's mean taken out, fp8 or fp16 p v), ships as Triton kernels that
// ran the Wan 14B shape at 1.27x cuDNN's bf16 attention on an H100 (BENCHMARKS.md): cuDNN's fp8
// kernel is the one that can beat bf16 there.
//
// Scaling: one scale per tensor (q, k, v: their largest magnitude maps to 448, e4m3's largest),
// computed on the device: cuDNN's fp8 attention takes per-tensor descales, and per-tensor is
// enough here because every model's q and k come out of an RMS norm (their magnitudes are the
// norm's weights', not the tokens'); k loses its mean over the keys first (SageAttention's
// smoothing: exact under the softmax), in fp32 inside its quantisation kernel. The probabilities
// are in [0, 1] and scale by 448. Hopper's kernel writes its output as e4m3 too: its scale comes
// from v's (each output row is a convex combination of v's rows, so |o| <= amax(v)). The output
// goes back to bf16 with v's descale, or stays e4m3 for an fp8 linear layer to read as it is
// (Fp8AttentionE4m3: one rounding and two passes fewer before the output projection).
// Error: each e4m3 rounding is at most 2^-4 relative (3 mantissa bits). The kernel's own two
// (probabilities, output) leave it 3% (relative L2) from fp32 attention on its e4m3 inputs, which
// the gpu tests bound (fp8_attention_test); with q's and k's rounding moving every score, a call
// lands 6-9% from fp32 on random inputs (BENCHMARKS.md): a lossy switch.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace raylight::models {

// Whether this build has fp8 attention (cuDNN's frontend headers were found), and whether
// `device` runs it (a CUDA device of compute capability 9.0 or newer). When not, says why.
bool Fp8AttentionRuns(const at::Device& device, std::string* why = nullptr);

// q [B, Lq, H, D], k and v [B, Lk, H, D], bf16 on a CUDA device (D a multiple of 16, at most
// 256) -> bf16 [B, Lq, H, D]; scale 1/sqrt(D), no mask. Throws c10::Error where it cannot run
// (Fp8AttentionRuns false, other dtypes or shapes, cuDNN refusing the graph), naming attention.
at::Tensor Fp8Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The attention's output as the kernel writes it: out = values * descale.
struct Fp8AttentionOutput {
  at::Tensor values;   // kFloat8_e4m3fn [B, Lq, H, D]
  at::Tensor descale;  // kFloat [1] on the values' device (v's descale)
};

// Fp8Attention without the return to bf16.
Fp8AttentionOutput Fp8AttentionE4m3(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// `out` in bf16 (one pass on the GPU): what Fp8Attention returns.
at::Tensor DequantizeFp8Attention(const Fp8AttentionOutput& out);

}  // namespace raylight::models
