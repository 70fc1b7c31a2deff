// TeaCache's skip decision (Liu et al., "Timestep Embedding Tells: It's Time to Cache for Video
// Diffusion Model", CVPR 2025; the authors' TeaCache4Wan2.1): a step reuses the blocks' residual
// of the last computed step while the accumulated, polynomially rescaled relative L1 change of
// the model's timestep-modulated input stays under a threshold.
//
// Per conditioning branch (cond and uncond keep their own state, as the authors' even and odd
// calls do), for the k-th call of the branch:
//   k < retention or k >= cutoff:  compute; the accumulator restarts at 0
//   otherwise:                     acc += poly(rel_l1); acc < threshold ? reuse : compute, acc = 0
// where rel_l1 = mean|m_k - m_{k-1}| / mean|m_{k-1}| of the modulated input m and poly applies
// the coefficients highest power first (numpy.poly1d). Torch-free: the caller measures rel_l1.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "models/core/step_cache_policy.h"

namespace raylight::models {

struct TeaCacheSettings {
  double threshold = 0;
  std::vector<double> coefficients;  // highest power first; empty: rel_l1 as it is
  int retention_calls = 1;           // the first calls of a branch always computed
  int cutoff_call = 1 << 30;         // from this call of a branch on, always computed
};

// Checks the numbers (a finite threshold in [0, 10], finite coefficients, at most 8 of them).
absl::Status ValidateTeaCacheSettings(const TeaCacheSettings& settings);

class TeaCachePolicy final : public StepCachePolicy {
 public:
  explicit TeaCachePolicy(TeaCacheSettings settings) : settings_(std::move(settings)) {}

  // Whether call `call` (0-based, of this branch) must run the blocks; `rel_l1` is its modulated
  // input's relative L1 distance from the previous call's (not read for the retained calls).
  bool ShouldCompute(int call, double rel_l1) override;
  bool measures_change() const override { return true; }
  int reused() const override { return reused_; }
  double accumulated() const { return accumulated_; }

 private:
  double Rescale(double rel_l1) const;

  const TeaCacheSettings settings_;
  double accumulated_ = 0;
  int reused_ = 0;
};

}  // namespace raylight::models
