// A step cache's state for one conditioning branch of a run, on this rank (TeaCache, MagCache:
// step_cache_policy.h): its policy and the residual the transformer blocks added to this rank's
// tokens at the last computed call. A call the policy lets reuse adds that residual instead of
// running the blocks; the policies decide from values every rank of a group shares, so FSDP's
// gathers stay matched.
#pragma once

#include <ATen/ATen.h>

#include <memory>

#include "models/core/step_cache_policy.h"

namespace raylight::models {

struct ResidualCache {
  explicit ResidualCache(std::unique_ptr<StepCachePolicy> step_policy)
      : policy(std::move(step_policy)) {}
  virtual ~ResidualCache() = default;

  // Whether this call adds the cached residual to `stream` (this rank's rows, before the
  // blocks) instead of running the blocks; counts the call. `change`: the measured change a
  // measuring policy reads; `comparable`: whether it was measurable (false: run the blocks). A
  // decision to reuse with no residual of the stream's shape runs the blocks.
  bool ReuseFor(const at::Tensor& stream, double change = 0.0, bool comparable = true) {
    const bool compute = policy->ShouldCompute(calls++, change);
    const bool reuse =
        !compute && comparable && residual.defined() && residual.sizes() == stream.sizes();
    reused += reuse;
    return reuse;
  }
  // After a computed call: what the blocks added (`after` - `before`).
  void Keep(const at::Tensor& before, const at::Tensor& after) { residual = after - before; }

  std::unique_ptr<StepCachePolicy> policy;
  at::Tensor residual;  // this rank's rows, fp32
  // What a measuring policy compares the next call with: the modulated input the forward
  // measured at this call (the family decides which: Wan's timestep modulation, the Flux
  // forward's first modulated image rows), fp32.
  at::Tensor previous;
  int calls = 0;
  int reused = 0;  // calls that added the residual (a policy's reuse with none to add computes)
};

}  // namespace raylight::models
