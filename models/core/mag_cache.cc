#include "models/core/mag_cache.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace raylight::models {
namespace {

// One branch's accumulators (the authors' accumulated_ratio, _steps, _err).
struct BranchState {
  double ratio = 1.0;
  int skipped = 0;
  double error = 0.0;

  void Restart() { *this = BranchState(); }
};

// The calls the authors always compute (their `cnt` over 2 x steps calls, cond and uncond in
// turn): the first share of them; with two experts, per their rule for the run's kind. The first
// call of a branch has no residual to reuse either (their code would fail there with no retained
// calls).
class Retention {
 public:
  Retention(const MagCacheSettings& settings, int steps, ExpertSplit experts)
      : ratio_(settings.retention_ratio),
        calls_(2 * steps),
        split_(2 * experts.switch_step),
        image_(experts.image_to_video),
        flux_(settings.rule == MagCacheRule::kFlux) {}

  bool Retained(int call) const {
    if (call < 2) return true;
    // MagCache4FLUX counts steps: cnt >= int(retention_ratio * num_steps + 0.5) may skip.
    if (flux_) return call / 2 < static_cast<int>(ratio_ * (calls_ / 2) + 0.5);
    if (split_ <= 0) return call < static_cast<int>(calls_ * ratio_);
    if (image_) return call < static_cast<int>(split_ + (calls_ - split_) * ratio_);
    return call < static_cast<int>(split_ * ratio_) ||
           (call >= split_ && call <= (calls_ - split_) * ratio_ + split_);
  }

 private:
  const double ratio_;
  const int calls_, split_;
  const bool image_, flux_;
};

// MagCache4FLUX computes the step whose index, mapped onto their 28-step calibration
// (np.round(cnt * 27 / (num_steps - 1))), is 11, whatever the accumulators say.
bool FluxForcedStep(int step, int steps) {
  return steps > 1 && std::nearbyint(step * (27.0 / (steps - 1))) == 11;
}

// The authors' rule for call `call` (their counter) of a branch: true to reuse. Updates `state`
// as they do: a reuse keeps the accumulators, a compute restarts them.
bool RuleReuses(const MagCacheSettings& settings, const std::vector<double>& ratios, int call,
                const Retention& retention, BranchState& state) {
  if (retention.Retained(call)) return false;
  state.ratio *= ratios[call];
  state.skipped += 1;
  state.error += std::abs(1.0 - state.ratio);
  const bool flux = settings.rule == MagCacheRule::kFlux;
  const bool small = flux ? state.error <= settings.threshold : state.error < settings.threshold;
  const int steps = static_cast<int>(ratios.size() / 2);
  if (small && state.skipped <= settings.max_skips && !(flux && FluxForcedStep(call / 2, steps))) {
    return true;
  }
  state.Restart();
  return false;
}

}  // namespace

absl::Status ValidateMagCacheSettings(const MagCacheSettings& settings) {
  if (!std::isfinite(settings.threshold) || settings.threshold < 0 || settings.threshold > 10) {
    return absl::InvalidArgumentError(
        absl::StrCat("threshold: ", settings.threshold, " is outside [0, 10]"));
  }
  if (settings.max_skips < 1 || settings.max_skips > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_skips: ", settings.max_skips, " is outside [1, 1000]"));
  }
  if (!std::isfinite(settings.retention_ratio) || settings.retention_ratio < 0 ||
      settings.retention_ratio > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("retention_ratio: ", settings.retention_ratio, " is outside [0, 1]"));
  }
  if (settings.ratios.empty() || settings.ratios.size() % 2 != 0 ||
      settings.ratios.size() > 20000) {
    return absl::InvalidArgumentError(
        absl::StrCat("mag_ratios: ", settings.ratios.size(),
                     " values; cond and uncond of each step in turn (an even count, at most "
                     "20000)"));
  }
  for (double r : settings.ratios) {
    if (!std::isfinite(r) || r <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("mag_ratios: ", r, " is not a finite positive ratio"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MagCacheSettings> MagCacheSettingsFor(
    const std::optional<MagCacheSettings>& published, const MagCacheRequest& request,
    const std::string& model, const std::string& calibrated) {
  MagCacheSettings settings = published.value_or(MagCacheSettings());
  if (request.threshold != 0) settings.threshold = request.threshold;
  if (request.max_skips != 0) settings.max_skips = request.max_skips;
  if (request.retention_ratio >= 0) settings.retention_ratio = request.retention_ratio;
  if (!request.ratios.empty()) settings.ratios = request.ratios;
  if (settings.ratios.empty()) {
    return absl::NotFoundError(absl::StrCat("cache.mag_ratios: no published MagCache ratios for ",
                                            model, " (", calibrated, "); give the job's own"));
  }
  if (auto valid = ValidateMagCacheSettings(settings); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cache.", valid.message()));
  }
  return settings;
}

std::vector<double> NearestInterp(const std::vector<double>& source, int length) {
  if (length <= 0 || source.empty()) return {};
  if (length == 1) return {source.back()};
  const double scale = static_cast<double>(source.size() - 1) / static_cast<double>(length - 1);
  std::vector<double> out;
  out.reserve(length);
  for (int i = 0; i < length; ++i) {
    // numpy.round: halves to even.
    out.push_back(source[static_cast<size_t>(std::nearbyint(i * scale))]);
  }
  return out;
}

std::vector<double> RatiosForSteps(const std::vector<double>& interleaved, int steps) {
  if (interleaved.size() == static_cast<size_t>(2 * steps)) return interleaved;
  std::vector<double> branch[2];
  for (size_t i = 0; i < interleaved.size(); ++i) branch[i % 2].push_back(interleaved[i]);
  const std::vector<double> cond = NearestInterp(branch[0], steps);
  const std::vector<double> uncond = NearestInterp(branch[1], steps);
  std::vector<double> out;
  for (int k = 0; k < steps; ++k) {
    out.push_back(cond[k]);
    out.push_back(uncond[k]);
  }
  return out;
}

std::vector<std::vector<bool>> AuthorsMagCacheDecisions(const MagCacheSettings& settings, int steps,
                                                        ExpertSplit experts) {
  const std::vector<double> ratios = RatiosForSteps(settings.ratios, steps);
  const Retention retained(settings, steps, experts);
  std::vector<std::vector<bool>> compute(2, std::vector<bool>(steps, true));
  BranchState state[2];
  for (int call = 0; call < 2 * steps; ++call) {
    const int branch = call % 2;
    compute[branch][call / 2] = !RuleReuses(settings, ratios, call, retained, state[branch]);
  }
  return compute;
}

std::vector<bool> MagCacheSchedule(const MagCacheSettings& settings, int steps, bool two_branches,
                                   ExpertSplit experts) {
  const std::vector<double> ratios = RatiosForSteps(settings.ratios, steps);
  const Retention retained(settings, steps, experts);
  std::vector<bool> compute(steps, true);
  BranchState state[2];
  for (int step = 0; step < steps; ++step) {
    const bool cond = RuleReuses(settings, ratios, 2 * step, retained, state[0]);
    const bool uncond =
        two_branches && RuleReuses(settings, ratios, 2 * step + 1, retained, state[1]);
    const bool reuse = cond && (uncond || !two_branches);
    // A branch whose rule would reuse but computes with the other restarts, as a computing call
    // does (a retained call keeps the accumulators, as the authors' do).
    if (!reuse) {
      if (cond) state[0].Restart();
      if (uncond) state[1].Restart();
    }
    compute[step] = !reuse;
  }
  return compute;
}

}  // namespace raylight::models
