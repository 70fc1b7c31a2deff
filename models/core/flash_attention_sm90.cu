// FlashInfer's sm_90a prefill kernel (include/flashinfer/attention/hopper/prefill_sm90.cuh),
// instantiated once: bf16 in and out, head size 128, no mask, no sliding window, the plain
// softmax variant. Built for sm_90a only (wgmma and TMA); flash_attention.cc checks the device
// first.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <flashinfer/attention/hopper/prefill_sm90.cuh>
#include <flashinfer/attention/hopper/variants.cuh>
#include <flashinfer/cutlass_utils.cuh>

#include "models/core/flash_attention_sm90.h"

namespace raylight::models {
namespace {

using DType = flashinfer::cutlass_dtype_t<nv_bfloat16>;

// The parameter block FlashInfer's kernels read (the fields its single-sequence prefill
// dispatcher and its default variant name; what its JIT writes from a template).
struct Params {
  using DTypeQ = DType;
  using DTypeKV = DType;
  using DTypeO = DType;
  using IdType = int32_t;

  DTypeQ* q_ptr = nullptr;
  DTypeKV* k_ptr = nullptr;
  DTypeKV* v_ptr = nullptr;
  DTypeO* o_ptr = nullptr;
  float* lse_ptr = nullptr;  // no log-sum-exp: inference only

  struct AdditionalParams {
    float* maybe_scale_v = nullptr;  // no per-head v scale: scale_v_scalar for every head
    double logits_soft_cap = 0;
    double sm_scale = 0;
    double scale_v_scalar = 1;
  } additional_params;

  int64_t q_stride_n = 0, k_stride_n = 0, v_stride_n = 0, o_stride_n = 0;
  int64_t q_stride_h = 0, k_stride_h = 0, v_stride_h = 0, o_stride_h = 0;
  int qo_len = 0, kv_len = 0, head_dim = 0, num_qo_heads = 0, num_kv_heads = 0, group_size = 0;
  int window_left = -1;
  bool causal = false;
};

bool Aligned(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }
bool Strided(int64_t stride) { return stride > 0 && stride % 8 == 0; }

}  // namespace

int LaunchFlashAttentionSm90(const FlashAttentionSm90Args& a, void* stream) {
  const bool valid = a.q_len > 0 && a.kv_len > 0 && a.heads > 0 && a.kv_heads > 0 &&
                     a.heads % a.kv_heads == 0 && Aligned(a.q) && Aligned(a.k) && Aligned(a.v) &&
                     Aligned(a.out) && Strided(a.q_token_stride) && Strided(a.q_head_stride) &&
                     Strided(a.k_token_stride) && Strided(a.k_head_stride) &&
                     Strided(a.v_token_stride) && Strided(a.v_head_stride) &&
                     Strided(a.out_token_stride) && Strided(a.out_head_stride) && a.scale > 0;
  if (!valid) return cudaErrorInvalidValue;
  Params p;
  p.q_ptr = static_cast<DType*>(const_cast<void*>(a.q));
  p.k_ptr = static_cast<DType*>(const_cast<void*>(a.k));
  p.v_ptr = static_cast<DType*>(const_cast<void*>(a.v));
  p.o_ptr = static_cast<DType*>(a.out);
  p.additional_params.sm_scale = a.scale;
  p.q_stride_n = a.q_token_stride;
  p.q_stride_h = a.q_head_stride;
  p.k_stride_n = a.k_token_stride;
  p.k_stride_h = a.k_head_stride;
  p.v_stride_n = a.v_token_stride;
  p.v_stride_h = a.v_head_stride;
  p.o_stride_n = a.out_token_stride;
  p.o_stride_h = a.out_head_stride;
  p.qo_len = a.q_len;
  p.kv_len = a.kv_len;
  p.head_dim = static_cast<int>(kFlashAttentionSm90HeadDim);
  p.num_qo_heads = a.heads;
  p.num_kv_heads = a.kv_heads;
  p.group_size = a.heads / a.kv_heads;
  constexpr uint32_t kHeadDim = static_cast<uint32_t>(kFlashAttentionSm90HeadDim);
  return static_cast<int>(
      flashinfer::SinglePrefillWithKVCacheDispatched<
          kHeadDim, kHeadDim, flashinfer::MaskMode::kNone,
          /*LEFT_SLIDING_WINDOW=*/false, flashinfer::DefaultAttention<false>, Params>(
          p, static_cast<cudaStream_t>(stream)));
}

}  // namespace raylight::models
