// What any diffusion checkpoint is, from its header alone (torch-free: the head plans jobs with
// it, the worker's engine sizes and places models with it): its family and variant, the numbers
// the mesh planner and the placement planner need, its latent's geometry, its model sampling and
// how its conditioning files are checked. Each family fills it from its own detection
// (family_registry.h); InspectModel asks each family in turn.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/core/mag_cache.h"
#include "models/core/safetensors.h"
#include "models/core/tea_cache.h"

namespace raylight::models {

// How a family's network is sampled (ComfyUI's model_sampling): the sampler maps it to its own
// ModelSampling (models never depend on samplers).
enum class SamplingKind {
  kShiftedFlow,  // ModelSamplingDiscreteFlow: sigma' = s*sigma / (1 + (s-1)*sigma) (Wan, SD3)
  kFluxShift,    // ModelSamplingFlux: sigma = exp(mu) / (exp(mu) + (1/t - 1)), mu = the shift
};

struct ModelInfo {
  std::string family;   // the registered family's name: "wan", "flux"
  std::string variant;  // the family's preset name ("wan2.1-t2v-14b", "flux1-dev"), or "custom"
  int num_heads = 0;    // attention heads (Ulysses degrees must divide them)
  // The LATENT: [B, C, F, H, W] for video families, [B, C, H, W] for image ones.
  bool video = true;
  int64_t latent_channels = 16;
  int64_t spatial_factor = 8;   // the VAE's compression of width and height
  int64_t temporal_factor = 4;  // of frames (video): 4k + 1 frames make k + 1 latent frames
  // The most frames a job may make: 0 any 4k + 1; 1 for an image model whose LATENT keeps a
  // frame axis (Qwen-Image: [B, 16, 1, H, W], ComfyUI's Wan21 latent format).
  int64_t max_frames = 0;
  int64_t patch_t = 1, patch_h = 2, patch_w = 2;  // the transformer's patch over the latent
  // Tokens beside the image's in the attention sequence (Flux's joint text tokens: 512 for a
  // T5 prompt padded as the pipelines pad it); 0 where text enters by cross-attention (Wan).
  int64_t joint_text_tokens = 0;
  // A guidance-distilled model takes its guidance strength as an input (Flux.1-dev): classifier-
  // free guidance is not how it is run, and CFG parallelism has nothing to split.
  bool guidance_distilled = false;
  // The model sampling ComfyUI gives the model, and its shift where a job gives none.
  SamplingKind sampling = SamplingKind::kShiftedFlow;
  double default_shift = 1.0;
  // Whether the family's loader merges LoRAs (a job's `loras` are refused by name otherwise).
  bool merges_loras = false;
  // Whether the family's forward runs its block linears as fp8 GEMMs under a job's
  // `compute: fp8` (models/core/fp8_linear.h; refused by name otherwise).
  bool computes_fp8 = false;
  // The VAE that decodes its LATENT on the cluster (a job's `output`): "wan2.1" (Wan 2.1's
  // architecture: Qwen-Image's VAE is one, with its own weights), "kl" (the image VAE,
  // AutoencoderKL: Flux.1's and Chroma's ae.safetensors, models/vae/kl_vae.h); empty: none here
  // yet.
  std::string vae;
  // Step caching (MagCache, models/core/mag_cache.h): whether the family's forward takes a step
  // cache (a job's `cache` is refused by name otherwise), and the authors' calibration for the
  // model at a job's width x height where they published one (nullopt: the job gives its ratios).
  bool caches_steps = false;
  std::function<std::optional<MagCacheSettings>(int64_t width, int64_t height)> published_mag_cache;
  // TeaCache on the change the family's forward measures itself (the Flux forward: its first
  // double block's modulated image input; Wan's TeaCache has its own rules: wan_tea_cache.h):
  // whether it does, and the authors' calibration where they published one (nullopt: the job
  // gives its coefficients and threshold).
  bool tea_caches = false;
  std::function<std::optional<TeaCacheSettings>()> published_tea_cache;
  // A job's conditioning file (`positive`, `negative`), from its header: what the family's
  // forward takes; `where` starts every message. Unset for a family whose jobs have no files.
  std::function<absl::Status(const StHeader& header, const std::string& where)> check_conditioning;

  // Attention tokens of one sample of a latent frames x height x width (latent units; frames 1
  // for image families), text included where it joins the sequence.
  int64_t Tokens(int64_t frames, int64_t height, int64_t width) const;
  // The same for a job's pixel size (frames 1 for image families).
  int64_t PixelTokens(int64_t frames, int64_t height, int64_t width) const;
};

// The MagCache settings of a job on a model of `info` at width x height pixels: the authors'
// where they published some for it, with the job's numbers (mag_cache.h MagCacheSettingsFor).
absl::StatusOr<MagCacheSettings> MagCacheSettingsOf(const ModelInfo& info,
                                                    const MagCacheRequest& request, int64_t width,
                                                    int64_t height);

// A job's TeaCache numbers on a family that measures its own change (ModelInfo.tea_caches):
// 0 / empty take the published ones.
struct TeaCacheRequest {
  double threshold = 0;
  std::vector<double> coefficients;
  int steps = 0;  // the sampling steps (model calls per branch)
};

// The TeaCache settings of a job on a model of `info`: the job's coefficients and threshold, or
// the authors'; the first and the last call of a branch always computed (TeaCache4FLUX's
// rule). InvalidArgument naming the field where the family measures nothing or numbers are
// bad; NotFound where nobody calibrated the model and the job gives no coefficients.
absl::StatusOr<TeaCacheSettings> TeaCacheSettingsOf(const ModelInfo& info,
                                                    const TeaCacheRequest& request);

// The model in `paths` (safetensors shards or a GGUF file): the first family (the built-in ones,
// then those registered by RegisterFamily) that claims the checkpoint's names, with that family's
// detection and checks. Errors are the family's, naming the file and key.
absl::StatusOr<ModelInfo> InspectModel(const std::vector<std::string>& paths);

}  // namespace raylight::models
