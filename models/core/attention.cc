#include "models/core/attention.h"

namespace raylight::models {

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
