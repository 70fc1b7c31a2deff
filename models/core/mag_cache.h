// MagCache's skip schedule (Ma et al., "MagCache: Fast Video Generation with Magnitude-Aware
// Cache", NeurIPS 2025; the authors' MagCache4Wan2.1): the ratio of the blocks' residual
// magnitudes between consecutive steps follows one curve for a model, whatever the prompt, so the
// authors calibrate it once and a run decides from it alone which calls reuse the last residual.
//
// Per conditioning branch, over the authors' call counter n = 2 * step + branch (cond 0, uncond 1;
// 2 x steps calls): calls n < int(2 x steps x retention_ratio) compute (Wan 2.2 A14B's experts:
// ExpertSplit's rules), keeping the accumulators. Otherwise
//   ratio *= r[n]; skipped += 1; error += |1 - ratio|
//   error < threshold and skipped <= max_skips:  reuse
//   otherwise:                                   compute; ratio = 1, skipped = 0, error = 0
// where r is the calibrated curve (cond and uncond of each step in turn), interpolated per branch
// to the run's steps by the authors' nearest_interp when its length differs.
//
// The schedule depends on the step index only, so it is made before the run and every rank of a
// group follows the same. Raylight's one change to the authors' rule: a step's cond and uncond
// calls skip together (both branches' rules must say reuse; where one computes, both compute),
// so that a batched cond + uncond forward, or CFG-parallel ranks sharing FSDP gathers, take one
// decision; a branch whose rule said reuse but computes restarts its accumulators, as a computing
// call does. Torch-free: the head checks a job's settings with it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/core/step_cache_policy.h"

namespace raylight::models {

// Which of the authors' rules: MagCache4Wan2.1 / 4Wan2.2 / 4QwenImage (a counter over cond and
// uncond calls in turn, the first share of the calls retained, error < threshold), or
// MagCache4FLUX (one branch: a counter over steps, int(share x steps + 0.5) steps retained,
// error <= threshold, and the step that maps to 11 of their 28 always computed).
enum class MagCacheRule { kWan, kFlux };

struct MagCacheSettings {
  double threshold = 0.12;  // the authors' default (MagCache4Wan2.1's magcache_thresh)
  int max_skips = 2;        // their K
  double retention_ratio = 0.2;
  std::vector<double> ratios;  // cond, uncond of each step in turn (2 per step)
  MagCacheRule rule = MagCacheRule::kWan;
};

// What a job asks (SampleJob.cache): 0 / negative / empty take the published (or default) value.
struct MagCacheRequest {
  double threshold = 0;
  int max_skips = 0;
  double retention_ratio = -1;
  std::vector<double> ratios;
};

// The job's settings: `published` (the authors' calibration for the model, nullopt where they
// published none) with the job's numbers where it gives them. NotFound naming cache.mag_ratios
// when neither has ratios (`calibrated`: which models the authors calibrated, for the message);
// InvalidArgument naming the field ("cache.threshold", ...) for numbers out of range.
absl::StatusOr<MagCacheSettings> MagCacheSettingsFor(
    const std::optional<MagCacheSettings>& published, const MagCacheRequest& request,
    const std::string& model, const std::string& calibrated);

// The numbers in range (threshold in [0, 10], max_skips in [1, 1000], retention_ratio in [0, 1],
// an even count of finite positive ratios), errors naming the field ("threshold", "max_skips",
// "retention_ratio", "mag_ratios").
absl::Status ValidateMagCacheSettings(const MagCacheSettings& settings);

// The authors' nearest_interp: `source` resampled to `length` values by the nearest index.
std::vector<double> NearestInterp(const std::vector<double>& source, int length);

// The ratios for `steps` steps: `interleaved` itself when it has 2 x steps values, else each
// branch's values interpolated to `steps` and interleaved again (as the authors do).
std::vector<double> RatiosForSteps(const std::vector<double>& interleaved, int steps);

// Wan 2.2 A14B's two experts as one run (MagCache4Wan2.2: one call counter and one residual per
// branch across both experts): the step at which the low-noise expert takes over (0: one model),
// and which retention its authors use: image-to-video retains the whole high-noise part and the
// first share of the rest; text-to-video the first share of each expert's calls.
struct ExpertSplit {
  int switch_step = 0;
  bool image_to_video = false;
};

// Whether each call of a branch computes, by the authors' rule alone: [branch][step].
std::vector<std::vector<bool>> AuthorsMagCacheDecisions(const MagCacheSettings& settings, int steps,
                                                        ExpertSplit experts = {});

// The run's schedule: whether step k's call(s) compute. `two_branches`: the job has cond and
// uncond calls (cfg != 1), which skip together; otherwise the cond branch's rule alone.
std::vector<bool> MagCacheSchedule(const MagCacheSettings& settings, int steps, bool two_branches,
                                   ExpertSplit experts = {});

// A branch's calls following a schedule made before the run (MagCacheSchedule): call k computes
// where schedule[k] is true, and past its end.
class ScheduledSkips final : public StepCachePolicy {
 public:
  explicit ScheduledSkips(std::vector<bool> schedule) : schedule_(std::move(schedule)) {}
  bool ShouldCompute(int call, double /*change*/) override {
    const bool compute = call < 0 || call >= static_cast<int>(schedule_.size()) || schedule_[call];
    if (!compute) ++reused_;
    return compute;
  }
  bool measures_change() const override { return false; }
  int reused() const override { return reused_; }

 private:
  const std::vector<bool> schedule_;
  int reused_ = 0;
};

}  // namespace raylight::models
