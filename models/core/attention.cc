#include "models/core/attention.h"

#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>

#include <atomic>

#include "models/core/flash_attention.h"
#include "models/core/fp8_attention.h"
#include "models/core/sequence_parallel.h"

namespace raylight::models {
namespace {

std::atomic<AttentionBackend> backend{AttentionBackend::kAuto};

// Returns an undefined tensor when cuDNN cannot run these inputs.
at::Tensor TryCudnn(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!q.is_cuda() || (q.scalar_type() != at::kBFloat16 && q.scalar_type() != at::kHalf)) return {};
  try {
    return std::get<0>(at::_scaled_dot_product_cudnn_attention(q, k, v, std::nullopt,
                                                               /*compute_log_sumexp=*/false));
  } catch (const c10::Error&) {
    return {};
  }
}

}  // namespace

void SetAttentionBackend(AttentionBackend value) { backend.store(value); }
AttentionBackend GetAttentionBackend() { return backend.load(); }

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const ParallelContext& parallel, AttentionKind kind) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention: q, k, v must be [B, L, H, D]");
  // Cross-attention needs no exchange: local queries attend to the replicated text K/V.
  if (kind == AttentionKind::kSelf && !parallel.single()) {
    return SequenceParallelAttention(q, k, v, parallel);
  }
  return LocalAttention(q, k, v, kind == AttentionKind::kSelf && parallel.fp8_attention);
}

at::Tensor LocalAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool fp8) {
  if (fp8) return Fp8Attention(q, k, v);
  // The kernels want [B, H, L, D]; the transposes are views, the kernels handle the strides.
  at::Tensor qt = q.transpose(1, 2), kt = k.transpose(1, 2), vt = v.transpose(1, 2);
  const AttentionBackend chosen = GetAttentionBackend();
  if (chosen == AttentionBackend::kAuto && FlashAttentionSm90Takes(q, k, v)) {
    return FlashAttentionSm90(q, k, v);  // takes [B, L, H, D] as it is
  }
  at::Tensor out;
  if (chosen != AttentionBackend::kSdpa) out = TryCudnn(qt, kt, vt);
  if (!out.defined()) out = at::scaled_dot_product_attention(qt, kt, vt);
  return out.transpose(1, 2);
}

}  // namespace raylight::models
