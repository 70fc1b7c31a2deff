// The attention op every model calls. On one process it is at::scaled_dot_product_attention
// (libtorch picks flash, memory-efficient or cuDNN kernels on GPU, the math kernel on CPU); with
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

// q: [B, Lq, H, D], k and v: [B, Lk, H, D] (this rank's shard for sharded inputs); returns
// [B, Lq, H, D]. Scale 1/sqrt(D), no mask, no dropout. Throws c10::Error on misuse, like any op;
// model entry points turn that into a Status.
at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const ParallelContext& parallel, AttentionKind kind);

}  // namespace raylight::models
