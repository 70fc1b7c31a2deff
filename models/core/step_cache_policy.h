// What a model's forward asks of a step cache (TeaCache, MagCache): whether a call of one
// conditioning branch runs the transformer blocks or adds the residual they added last time.
// Torch-free.
#pragma once

namespace raylight::models {

class StepCachePolicy {
 public:
  virtual ~StepCachePolicy() = default;
  // Whether call `call` (0-based, of this branch) must run the blocks. `change` is the relative L1
  // change of the call's modulated input from the previous call's, read only where
  // measures_change().
  virtual bool ShouldCompute(int call, double change) = 0;
  // Whether ShouldCompute reads `change` (measuring it costs a device synchronisation).
  virtual bool measures_change() const = 0;
  // Calls answered from the cache so far.
  virtual int reused() const = 0;
};

}  // namespace raylight::models
