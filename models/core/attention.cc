#include "models/core/attention.h"

#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>

#include <atomic>

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
  TORCH_CHECK(kind == AttentionKind::kCross || parallel.single(),
              "attention: sequence parallelism (ulysses ", parallel.ulysses_degree, " x ring ",
              parallel.ring_degree, ") is not built yet (issue #5)");
  // SDPA wants [B, H, L, D]; the transposes are views, SDPA handles the strides.
  at::Tensor out =
      at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
  return out.transpose(1, 2);
}

}  // namespace raylight::models
