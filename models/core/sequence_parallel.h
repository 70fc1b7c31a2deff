// Sequence parallelism over a ParallelContext: splitting a token sequence across the ranks,
// gathering it back, and the attention that lets each rank's queries see every rank's keys.
//
// Layout: the sequence is padded to a multiple of the SP degree (ulysses x ring) and cut into
// that many equal chunks; rank (ring r, ulysses u) holds chunk r * ulysses + u. After Ulysses'
// all-to-all, a Ulysses group holds its ring block (its chunks side by side) for 1/ulysses of the
// heads; Ring passes those blocks around. Padding is always at the end of the sequence, so it is
// excluded from attention by cutting the padded keys off (no masks, so flash/cuDNN kernels run),
// which makes any length give the single-process answer.
//
// Errors (a broken communicator, a context without communicators) throw c10::Error like any op;
// model entry points turn them into a Status.
#pragma once

#include <ATen/ATen.h>

#include "models/core/parallel_context.h"

namespace raylight::models {

// `tokens` rounded up to a multiple of `degree`.
int64_t PaddedLength(int64_t tokens, int64_t degree);

// This rank's chunk of `x` along `dim` (x holds the whole, unpadded sequence; the padding rows
// are filled with `pad_value`).
at::Tensor ShardSequence(const at::Tensor& x, int64_t dim, const ParallelContext& parallel,
                         double pad_value = 0);

// The inverse: every rank's chunk gathered along `dim` (in sequence order), padding dropped.
at::Tensor GatherSequence(const at::Tensor& local, int64_t dim, int64_t tokens,
                          const ParallelContext& parallel);

// Self-attention with q, k, v [B, L/P, H, D] this rank's chunks (parallel.valid_tokens set);
// returns this rank's chunk of the output. Ulysses, Ring, or both (USP).
at::Tensor SequenceParallelAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const ParallelContext& parallel);

// Attention and its log-sum-exp, so partial results over disjoint key sets can be merged:
// q [B, Lq, H, D], k/v [B, Lk, H, D] -> out [B, Lq, H, D], lse [B, H, Lq] (fp32).
struct PartialAttention {
  at::Tensor out;
  at::Tensor lse;
};
PartialAttention AttentionWithLse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Merges two partial results over disjoint keys (the online-softmax rule), in fp32.
PartialAttention MergePartials(const PartialAttention& a, const PartialAttention& b);

}  // namespace raylight::models
