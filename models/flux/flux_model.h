// The Flux.1 transformer (dev, schnell, Krea) as a function over named weights, following Black
// Forest Labs' reference (ComfyUI's comfy/ldm/flux/model.py runs the same code): 2x2 patches of
// the latent as image tokens, T5 tokens as text tokens, double-stream blocks (each stream its own
// weights, one joint attention) then single-stream blocks over the joint sequence [text; image],
// 3-axis RoPE over (index, row, column) position ids (text at 0, 0, 0).
//
// Sequence parallelism splits the joint sequence as one: text rows travel with the image rows,
// so a rank's chunk may hold text rows (always the chunk's first rows: text comes first), image
// rows or both, and each stream's weights apply to its own rows. Attention is then the plain
// sequence-parallel attention over the joint tokens (Ulysses, Ring or both), and any length
// gives the one-process answer. Modulation, norms and the residual stream run in fp32, the
// GEMMs and attention in the provider's compute dtype.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "absl/status/statusor.h"
#include "models/core/parallel_context.h"
#include "models/core/residual_cache.h"
#include "models/core/weights.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

struct FluxInputs {
  at::Tensor x;         // [B, latent_channels, H, W] noisy latent (odd sides padded, as ComfyUI)
  at::Tensor t;         // [B] sigma in [0, 1] (the model embeds t x 1000)
  at::Tensor context;   // [B, L, context_dim] T5 tokens
  at::Tensor pooled;    // [B, vec_dim] CLIP-L pooled vector; undefined: zeros (ComfyUI's default)
  at::Tensor guidance;  // [B] distilled guidance strength: required by dev / Krea; schnell has
                        // no guidance embedding and ignores it, as ComfyUI does
  // Kontext: reference images' latents [B, latent_channels, h, w] in the model's space (ComfyUI's
  // process_in applied), any size each; their tokens join the image's with position index 1.
  std::vector<at::Tensor> references;
  // The branch's step cache (MagCache), when the run caches; null: every call runs the blocks.
  ResidualCache* step_cache = nullptr;
};

// Two sets of inputs as one batch (cond and uncond in one forward): every tensor concatenated
// along the batch. They batch exactly when their texts have as many tokens (there is no attention
// mask to pad with) and their references the same sizes; otherwise they run as two calls.
bool BatchesExactly(const FluxInputs& first, const FluxInputs& second);
FluxInputs BatchInputs(const FluxInputs& first, const FluxInputs& second);

// Checks shapes against the config (each error names the input); no tensor work.
absl::Status ValidateFluxInputs(const FluxConfig& config, const FluxInputs& inputs);

// One denoising forward; returns the prediction [B, latent_channels, H, W] in fp32 on the
// provider's device.
absl::StatusOr<at::Tensor> FluxForward(const FluxConfig& config, const FluxInputs& inputs,
                                       const ParallelContext& parallel, WeightProvider& weights);

// A forward through the first double-stream and the first single-stream block alone at
// `inputs`' shape (models/core/block_subset.h), its output discarded: the shape's first-call
// costs paid for about two blocks' time. Every rank of `parallel` runs it together. No step
// cache. Returns once the device has finished it.
absl::Status WarmUpFluxForward(const FluxConfig& config, FluxInputs inputs,
                               const ParallelContext& parallel, WeightProvider& weights);

// The sinusoidal embedding Flux uses for the timestep and the guidance: [N, dim] (cos then sin)
// of `t` x 1000 against 10000^(-i / (dim/2)), in fp32 as the reference computes it: BFL scales t
// first; `scale_last` multiplies t by the frequencies first and the product by 1000, as diffusers'
// Timesteps (Qwen-Image's) rounds it. `time_factor`: the 1000.
at::Tensor FluxTimestepEmbedding(const at::Tensor& t, int64_t dim, bool scale_last = false,
                                 float time_factor = 1000.0f);

}  // namespace raylight::models::flux
