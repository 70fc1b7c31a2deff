// The umT5 encoder's forward (Wan's text encoder), a function over named weights like the Wan
// DiT: a WeightProvider hands it one block at a time (blocks "blocks.<i>.", globals
// "token_embedding.weight" and "norm.weight", internal names of umt5_keys.h).
//
// Numerics follow Hugging Face's UMT5EncoderModel and Wan's T5Encoder: T5's RMS norm (no mean
// subtracted), attention without 1/sqrt(d), a bucketed relative-position bias in every layer
// (bidirectional, log-spaced beyond half the buckets), a gated tanh-GELU FFN. The residual
// stream, the norms and the softmax stay float32 whatever the compute dtype (T5's activations
// overflow fp16: its fp16 form gives NaN); the GEMMs run in the provider's compute dtype.
#pragma once

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "models/core/weights.h"
#include "models/text/umt5_config.h"

namespace raylight::models::text {

// ids [B, L] (int64), mask [B, L] (1 = attended; masked keys get no attention) -> the last
// hidden states [B, L, dim], float32, on the provider's device. Masked positions' outputs are
// what the model computes for them (callers zero them, as ComfyUI does).
absl::StatusOr<at::Tensor> Umt5Forward(WeightProvider& weights, const Umt5Config& config,
                                       const at::Tensor& ids, const at::Tensor& mask);

// T5's relative-position buckets for a length-L self-attention: [L, L] int64, entry (i, j) the
// bucket of offset j - i.
at::Tensor RelativePositionBuckets(int64_t length, const Umt5Config& config, at::Device device);

}  // namespace raylight::models::text
