// ComfyUI's KSampler in one call: initial noise from the seed, the schedule, CFG over a model,
// the sampler loop, and the inverse noise scaling; plus the pieces on their own.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "models/core/latent_format.h"
#include "samplers/denoise_mask.h"
#include "samplers/easy_cache.h"
#include "samplers/k_samplers.h"
#include "samplers/latent_preview.h"
#include "samplers/model_sampling.h"

namespace raylight::samplers {

// The initial noise exactly as ComfyUI draws it (comfy/sample.py prepare_noise): a CPU
// generator seeded with `seed`, float32, the latent's shape — bit-identical to
// `torch.manual_seed(seed); torch.randn(shape)`.
at::Tensor PrepareNoise(uint64_t seed, at::IntArrayRef shape);

// Which conditioning a model call evaluates: the positive prompt, the negative one, or both in
// one batch (as ComfyUI batches cond and uncond): the output is then [2B, ...], cond first.
enum class Branch { kCond, kUncond, kBoth };

// The network: its raw output (eps, v or flow velocity) for model input x [B, ...] at timestep t
// under the conditioning `branch` picks.
using ModelFn =
    std::function<absl::StatusOr<at::Tensor>(const at::Tensor& x, double timestep, Branch branch)>;

// The inputs of a model call for `branch`: `make(true)` for cond, `make(false)` for uncond, both
// joined by `batch` for kBoth; what every ModelFn over a model that takes batches does.
template <typename MakeInputs, typename Batch>
auto InputsFor(Branch branch, const MakeInputs& make, const Batch& batch) {
  return branch == Branch::kBoth ? batch(make(true), make(false)) : make(branch == Branch::kCond);
}

// Wan 2.2 A14B: two 14B-shaped experts in one run, the high-noise one while sigma is at or
// above `boundary_sigma`, the low-noise one below (Wan 2.2's boundaries: 0.875 for T2V, 0.900 for
// I2V, on the shifted sigma). The timestep the experts see is sigma * 1000, as for every Wan.
ModelFn SwitchExperts(ModelFn high_noise, ModelFn low_noise, double boundary_sigma);

// CFG in sigma space: denoised = uncond + cfg * (cond - uncond); cfg == 1 evaluates the
// positive conditioning only. `batched`: cond and uncond in one call (Branch::kBoth), one
// forward over a batch of two, which under Ulysses interleaves the two halves so that each one's
// exchanges run beside the other's compute; otherwise two calls (on one GPU the batch of two
// measured 2% slower than two forwards, Wan 14B on an H200), half the activations.
// With `cache`, EasyCache answers evaluations from the last computed one where it may
// (easy_cache.h); the state lives as long as the denoiser.
Denoiser CfgDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                     bool batched = false, std::shared_ptr<EasyCache> cache = nullptr);

struct KSamplerOptions {
  uint64_t seed = 0;
  int steps = 20;
  double cfg = 5.0;
  // Cond and uncond as one batch (CfgDenoiser's `batched`); unset: only where the forward
  // interleaves the two halves (a mesh with Ulysses, MeshDenoiser).
  std::optional<bool> batch_cfg;
  std::string sampler = "euler";
  std::string scheduler = "simple";
  double denoise = 1.0;
  // ComfyUI's KSamplerAdvanced: without noise the latent is taken as already noised to the
  // first sigma (the second half of a chained run); only steps [start_step, end_step) of the
  // schedule run; a run cut before the schedule's end stops at sigma 0 unless
  // `return_with_leftover_noise` keeps the noise for the next run. Defaults: KSampler's.
  bool add_noise = true;
  int start_step = 0;
  int end_step = kMaxScheduleSteps;
  bool return_with_leftover_noise = false;
  // ComfyUI's SamplerCustom: an explicit schedule (descending), used instead of steps,
  // scheduler and denoise.
  std::vector<double> sigmas;
  SamplerOptions sampler_options;
  // Every `preview_every` steps (and on the last) the callback's StepInfo carries a PNG of the
  // denoised estimate's first frame; 0 = no previews.
  int preview_every = 0;
  // The format of the latents that go in and come out (ComfyUI's LATENT convention: the VAE's
  // space): the starting latent is taken to the model's space unless it is all zeros (ComfyUI
  // leaves an empty latent alone), the result returned to the VAE's space; previews use its RGB
  // projection. Null: latents in the model's space, previews by channel count.
  const models::LatentFormat* latent_format = nullptr;
  // ComfyUI's LATENT noise_mask (undefined: none): 1 where the latent is sampled, 0 where the
  // starting latent is kept (PrepareDenoiseMask's shapes), and how the kept part enters a call.
  at::Tensor denoise_mask;
  InpaintInput inpaint_input = InpaintInput::kRenoised;
  // ComfyUI's EasyCache node on the model (easy_cache.h): one state per KSample run, what it did
  // added to `easy_cache_stats` when given.
  std::optional<EasyCacheSettings> easy_cache;
  EasyCacheStats* easy_cache_stats = nullptr;
};

// The sigmas a KSample run steps through: the schedule (or the custom sigmas), cut to
// [start_step, end_step] as KSamplerAdvanced cuts it. Fewer than two: nothing to run (the
// latent is returned as given). Errors name the field.
absl::StatusOr<std::vector<double>> RunSigmas(const ModelSampling& sampling,
                                              const KSamplerOptions& options);

// Wan 2.2 A14B's two experts in one job, as ComfyUI workflows chain two KSamplerAdvanced nodes:
// the steps whose sigma is at or above `boundary` (on the shifted sigma) run on the high-noise
// expert, cut there with their leftover noise; the rest on the low-noise expert, from that run's
// LATENT without new noise. Each run is the options of one KSample call; one of them is absent
// when the boundary falls outside [start_step, end_step).
struct ExpertRuns {
  std::optional<KSamplerOptions> high_noise, low_noise;
  int switch_step = 0;  // the schedule step at which the low-noise expert takes over
  int high_noise_steps = 0, low_noise_steps = 0;  // the steps each run takes
};
absl::StatusOr<ExpertRuns> SplitForExperts(const ModelSampling& sampling,
                                           const KSamplerOptions& options, double boundary);

// latent: the starting latent (zeros for text-to-video, an encoded video for vid2vid), in
// options.latent_format's VAE space; the result is in the same space.
absl::StatusOr<at::Tensor> KSample(const ModelFn& model, const ModelSampling& sampling,
                                   const at::Tensor& latent, const KSamplerOptions& options,
                                   const StepCallback& callback = nullptr);

// CFG in sigma space from a step's raw outputs: the denoised estimate of cond alone when
// `outputs.uncond` is undefined (cfg 1), else uncond + (cond - uncond) * cfg of the two.
at::Tensor GuidedDenoised(const ModelSampling& sampling, double sigma, const at::Tensor& x,
                          const BranchOutputs& outputs, double cfg);

// The EasyCache state of one run of `options` (null when it asks for none).
std::shared_ptr<EasyCache> EasyCacheFor(const KSamplerOptions& options,
                                        const ModelSampling& sampling);

// KSample over any denoiser (CfgDenoiser is KSample's; parallel CFG brings its own). options.cfg
// is then only validated.
absl::StatusOr<at::Tensor> KSampleWith(const Denoiser& denoiser, const ModelSampling& sampling,
                                       const at::Tensor& latent, const KSamplerOptions& options,
                                       const StepCallback& callback = nullptr);

}  // namespace raylight::samplers
