// The attention op every model calls. On one process it is one fused kernel (AttentionBackend
// below: FlashInfer's on Hopper, cuDNN's elsewhere on the GPU, libtorch's math kernel on CPU); with
// sequence parallelism the same call runs Ulysses / Ring over the ParallelContext, so model code
// does not change when the mesh does.
#pragma once

#include <ATen/ATen.h>

#include "models/core/parallel_context.h"

namespace raylight::models {

enum class AttentionKind {
  kSelf,   // q, k, v all sharded along the sequence by the ParallelContext
  kCross,  // q sharded, k/v replicated on every rank (text context): no communication
};

// Which kernel family runs local attention on the GPU. kAuto: on H100 / H200, FlashInfer's
// Hopper kernel for bf16 at head size 128 (flash_attention.h: 0.87 of cuDNN's time at Wan 14B's
// 32,760 tokens, as exact; BENCHMARKS.md); elsewhere, or for other inputs, cuDNN's fused attention
// for bf16/fp16 (on Hopper ~1.5x libtorch's default flash kernel at video lengths), falling back to
// at::scaled_dot_product_attention's own choice when cuDNN refuses the shapes. kCudnn: the same
// without the Hopper kernel; kSdpa: always libtorch's choice (its default priority order).
enum class AttentionBackend { kAuto, kCudnn, kSdpa };
void SetAttentionBackend(AttentionBackend backend);
AttentionBackend GetAttentionBackend();

// Sets the backend for its lifetime and restores the one before (benchmarks' ablations, tests).
class AttentionBackendScope {
 public:
  explicit AttentionBackendScope(AttentionBackend backend) : previous_(GetAttentionBackend()) {
    SetAttentionBackend(backend);
  }
  ~AttentionBackendScope() { SetAttentionBackend(previous_); }
  AttentionBackendScope(const AttentionBackendScope&) = delete;
  AttentionBackendScope& operator=(const AttentionBackendScope&) = delete;

 private:
  AttentionBackend previous_;
};

// One process's attention kernel (what Attention runs without sequence parallelism): q [B, Lq,
// H, D], k and v [B, Lk, H, D] -> [B, Lq, H, D]. `fp8`: cuDNN's fp8 attention (fp8_attention.h),
// which throws where it cannot run rather than quietly computing in bf16.
at::Tensor LocalAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          bool fp8 = false);

// q: [B, Lq, H, D], k and v: [B, Lk, H, D] (this rank's shard for sharded inputs); returns
// [B, Lq, H, D]. Scale 1/sqrt(D), no mask, no dropout. Throws c10::Error on misuse, like any op;
// model entry points turn that into a Status.
at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const ParallelContext& parallel, AttentionKind kind);

}  // namespace raylight::models
