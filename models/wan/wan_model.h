// The Wan 2.1 / 2.2 diffusion transformer as a function over named weights
// (../shared/reference/wan.md, "Forward"). Weights come from a WeightProvider one block at a
// time; the mesh comes from the ParallelContext; modulation, time embedding and the output head
// run in fp32 as the reference does, the rest in the provider's compute dtype (bf16 on GPU, fp32
// on CPU). The residual stream is kept in fp32, as the reference's autocast regions keep it.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "models/core/parallel_context.h"
#include "models/core/residual_cache.h"
#include "models/core/weights.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

// A step cache (TeaCache, models/core/tea_cache.h; MagCache, mag_cache.h) for one conditioning
// branch of a run, on this rank: its policy, the previous call's timestep modulation (e0, or e
// without TeaCache's retention steps) where the policy measures its change, and the residual the
// blocks added to this rank's tokens at the last computed call. A reused call adds that residual
// instead of running the blocks. TeaCache's decision depends only on the timestep and the time
// embedding's weights, MagCache's on the step index, so every rank of a group takes the same one
// (FSDP's gathers stay matched).
struct WanStepCache : ResidualCache {
  WanStepCache(std::unique_ptr<StepCachePolicy> step_policy, bool modulation_e0)
      : ResidualCache(std::move(step_policy)), e0(modulation_e0) {}
  bool e0 = true;  // `previous` holds e0 [B, 6, dim]; false: e [B, dim]
};

struct WanInputs {
  at::Tensor x;         // [B, C, F, H, W] noisy latent (I2V: 16 channels with `y`, or all 36)
  at::Tensor t;         // [B] timesteps (sigma * 1000), or [B, tokens] per token (TI2V)
  at::Tensor context;   // [B, Ltext, text_dim], Ltext <= kMaxTextTokens; zero-padded to text_len
  at::Tensor clip_fea;  // I2V: [B, image_tokens, image_dim] CLIP-vision features
  at::Tensor y;         // I2V: [B, in_channels - C, F, H, W] mask + image latent, concatenated to x
  // The branch's TeaCache state, when the run caches steps; null: every call runs the blocks.
  WanStepCache* step_cache = nullptr;
};

// Two sets of inputs as one batch, `first` then `second` (cond and uncond in one forward, as
// ComfyUI batches them): every tensor concatenated along the batch; texts of different lengths
// are zero-padded to the longer first, which changes nothing while both are at most text_len
// (the forward zero-pads every text to text_len) — see TextsBatchExactly for longer ones. A
// per-batch timestep of size 1 is repeated. Shapes are checked by the forward.
WanInputs BatchInputs(const WanInputs& first, const WanInputs& second);

// Whether texts of `first_tokens` and `second_tokens` rows give the same result batched as
// alone: they do when both pad to the same length. A text longer than text_len padded further
// would add keys the prompt never had (ComfyUI, too, runs such a pair as two calls).
bool TextsBatchExactly(const WanConfig& config, int64_t first_tokens, int64_t second_tokens);

// Checks shapes against the config (each error names the input); no tensor work.
absl::Status ValidateWanInputs(const WanConfig& config, const WanInputs& inputs);

// One denoising forward; returns the prediction [B, out_channels, F, H, W] in fp32 on the
// provider's device.
absl::StatusOr<at::Tensor> WanForward(const WanConfig& config, const WanInputs& inputs,
                                      const ParallelContext& parallel, WeightProvider& weights);

// A forward through block 0 alone at `inputs`' shape (models/core/block_subset.h), its output
// discarded: the shape's first-call costs paid for about one block's time, so the first step
// after it costs what later ones do. Every rank of `parallel` runs it together (its exchanges are
// the forward's). No step cache. Returns once the device has finished it.
absl::Status WarmUpWanForward(const WanConfig& config, WanInputs inputs,
                              const ParallelContext& parallel, WeightProvider& weights);

// Sinusoidal timestep embedding [N, freq_dim] (cos then sin), computed in float64.
at::Tensor SinusoidalEmbedding(const at::Tensor& t, int64_t freq_dim);

// Which weights a provider keeps in fp32 for Wan (modulation tables, time embedding).
bool WanKeepsFp32(const std::string& name);

}  // namespace raylight::models::wan
