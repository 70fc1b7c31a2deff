// The Hopper attention kernel behind a plain C++ interface (no torch, no CUDA headers):
// FlashInfer's FlashAttention-3-style prefill kernel for sm_90a (warp-specialised TMA loads and
// wgmma, softmax overlapped with the next tile's matmuls), compiled into this project from the
// headers of the flashinfer-python wheel (Apache-2.0; with the CUTLASS and CCCL it ships).
// attention.cc runs it as the default bf16 attention on Hopper (LocalAttention).
#pragma once

#include <cstdint>

namespace raylight::models {

// One sequence's attention: softmax(q k^T * scale) v for every head, no mask. q [q_len, heads,
// 128] and k, v [kv_len, kv_heads, 128] bf16 in device memory, each with its own token and head
// strides in elements (the last dimension contiguous); out [q_len, heads, 128] bf16 likewise.
// heads must be a multiple of kv_heads (grouped queries). Base addresses 16-byte aligned and
// strides multiples of 8 elements (the kernel loads rows by TMA).
struct FlashAttentionSm90Args {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  int64_t q_token_stride = 0, q_head_stride = 0;
  int64_t k_token_stride = 0, k_head_stride = 0;
  int64_t v_token_stride = 0, v_head_stride = 0;
  int64_t out_token_stride = 0, out_head_stride = 0;
  int q_len = 0, kv_len = 0, heads = 0, kv_heads = 0;
  float scale = 0;
};

// The head size the kernel is compiled for (every model here: Wan, Flux, Qwen-Image).
constexpr int64_t kFlashAttentionSm90HeadDim = 128;

// Launches on `stream` (a cudaStream_t) on the current device; returns the cudaError_t
// (0: launched; cudaErrorInvalidValue for arguments outside the contract above).
int LaunchFlashAttentionSm90(const FlashAttentionSm90Args& args, void* stream);

}  // namespace raylight::models
