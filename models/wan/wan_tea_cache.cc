#include "models/wan/wan_tea_cache.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace raylight::models::wan {
namespace {

// TeaCache4Wan2.1's fits (teacache_generate.py) and the README's "slow" thresholds, for
// use_ret_steps true and false.
struct Published {
  std::vector<double> retention, plain;
  double retention_threshold, plain_threshold;
};

const Published* Find(const WanConfig& config, int64_t width, int64_t height) {
  static const Published t2v_1_3b{
      {-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02},
      {2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01},
      0.05,
      0.05};
  static const Published t2v_14b{
      {-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01},
      {-5784.54137548, 5449.50911966, -1811.16591783, 256.27178429, -13.02252404},
      0.10,
      0.14};
  static const Published i2v_480p{
      {2.57151496e+05, -3.54229917e+04, 1.40286849e+03, -1.35890334e+01, 1.32517977e-01},
      {-3.02331670e+02, 2.23948934e+02, -5.25463970e+01, 5.87348440e+00, -2.01973289e-01},
      0.20,
      0.13};
  static const Published i2v_720p{
      {8.10705460e+03, 2.13393892e+03, -3.72934672e+02, 1.66203073e+01, -4.17769401e-02},
      {-114.36346466, 65.26524496, -18.82220707, 4.91518089, -0.23412683},
      0.20,
      0.20};
  if (config.name == "wan2.1-t2v-1.3b") return &t2v_1_3b;
  if (config.name == "wan2.1-t2v-14b") return &t2v_14b;
  if (config.name == "wan2.1-i2v-14b") {
    return width * height >= int64_t{1280} * 720 ? &i2v_720p : &i2v_480p;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<TeaCacheSettings> WanTeaCacheSettings(const WanConfig& config, int64_t width,
                                                     int64_t height,
                                                     const WanTeaCacheRequest& request) {
  if (config.per_token_timesteps()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache: TeaCache reads one timestep modulation per call; ", config.name,
                     " has one per token"));
  }
  TeaCacheSettings settings;
  settings.threshold = request.threshold;
  settings.coefficients = request.coefficients;
  const Published* published = Find(config, width, height);
  if (settings.coefficients.empty()) {
    if (published == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "cache.coefficients: no published TeaCache coefficients for ", config.name,
          " (TeaCache4Wan2.1 calibrated Wan 2.1 t2v 1.3B and 14B, i2v 14B); give the job's own"));
    }
    settings.coefficients = request.retention_steps ? published->retention : published->plain;
  }
  if (settings.threshold == 0 && published != nullptr) {
    settings.threshold =
        request.retention_steps ? published->retention_threshold : published->plain_threshold;
  }
  // In calls of one branch: the authors count cond and uncond calls together (ret_steps 5 * 2,
  // cutoff steps * 2, or 1 * 2 and steps * 2 - 2).
  if (request.retention_steps) {
    settings.retention_calls = 5;
  } else {
    settings.retention_calls = 1;
    settings.cutoff_call = std::max(1, request.steps - 1);
  }
  if (auto valid = ValidateTeaCacheSettings(settings); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cache.", valid.message()));
  }
  return settings;
}

}  // namespace raylight::models::wan
