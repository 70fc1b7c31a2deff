// StepCaches: a sampling run's step cache states (models/wan/wan_model.h WanStepCache), one per
// model (each expert of a two-expert job) and conditioning branch, made from the job's cache
// settings: TeaCache (each state measures its own branch) or MagCache (every state follows the
// run's one schedule); or EasyCache's settings, which the sampler runs (samplers/easy_cache.h,
// whole evaluations reused); none when the job does not cache.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "actors/diffusion/diffusion_types.h"
#include "models/core/mag_cache.h"
#include "models/core/tea_cache.h"
#include "models/family/model_info.h"
#include "models/wan/wan_model.h"
#include "samplers/ksampler.h"

namespace raylight::actors {

class StepCaches {
 public:
  // The job's settings for `config` at the latent's width x height (in pixels). InvalidArgument
  // or NotFound naming the field for an unknown kind, bad numbers, or a model nobody calibrated
  // (`two_experts`: Wan 2.2 A14B's, whose low-noise expert takes over at `expert_switch_step`)
  // without the job's own coefficients or ratios.
  static absl::StatusOr<StepCaches> ForJob(const SampleRequest& request,
                                           const models::wan::WanConfig& config, int64_t width,
                                           int64_t height, bool two_experts,
                                           int expert_switch_step = 0);
  // A run of any other family (conditioned_sampling.cc): MagCache from the authors' settings
  // for the model (ModelInfo.published_mag_cache at width x height pixels) and the job's
  // numbers, or TeaCache on the change the family's forward measures (ModelInfo.tea_caches);
  // InvalidArgument naming the field where the family caches no steps.
  static absl::StatusOr<StepCaches> ForFamily(const SampleRequest& request,
                                              const models::ModelInfo& info, int64_t width,
                                              int64_t height);

  // Whether the forward measures the change of each call's rows (a family's TeaCache): cond
  // and uncond then decide together only when they run as one batch.
  bool measures_rows() const { return measures_rows_; }
  bool enabled() const { return tea_.has_value() || mag_.has_value() || easy_.has_value(); }
  // The state of `model`'s `branch` (made on first use); null when the job does not cache in the
  // forward (no cache, or EasyCache).
  models::wan::WanStepCache* For(const void* model, int branch);
  // FailedPrecondition for EasyCache or a family's TeaCache on a data-parallel mesh (`dp` > 1)
  // over FSDP-placed weights (`placement`): each sample decides its own steps, FSDP's ranks run
  // every forward together; and for a family's TeaCache where cond and uncond run on different
  // ranks (`split_cfg`): one process measures both branches' rows of a call together.
  absl::Status CheckPlacement(const std::string& placement, int dp, bool split_cfg = false) const;
  // EasyCache on the run's sampler: `options` take its settings and report into this object,
  // which must outlive the runs.
  void ApplyTo(samplers::KSamplerOptions& options);
  // Calls answered from a cache, over every state (EasyCache's calls not made included).
  int reused() const;
  // Calls EasyCache answered without calling the model (so not among the calls made).
  int calls_not_made() const { return easy_stats_.calls_saved; }
  // "TeaCache: threshold 0.1, retention steps" (for the job's log).
  // A family's forward takes the base of the state For() returns.
  std::string Describe() const;

 private:
  void SetMagCache(models::MagCacheSettings settings, const SampleRequest& request,
                   models::ExpertSplit experts = {});

  std::optional<models::TeaCacheSettings> tea_;
  bool retention_steps_ = true;
  bool measures_rows_ = false;  // a family's TeaCache: the forward measures its rows' change
  std::optional<models::MagCacheSettings> mag_;
  std::vector<bool> schedule_;  // MagCache's, per step
  std::optional<samplers::EasyCacheSettings> easy_;
  samplers::EasyCacheStats easy_stats_;
  std::map<std::pair<const void*, int>, std::unique_ptr<models::wan::WanStepCache>> caches_;
};

}  // namespace raylight::actors
