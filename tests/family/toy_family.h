// A toy diffusion family written outside models/ (issue #26's proof that a family is a folder):
// the test's own head and worker register it and run its jobs with no change anywhere else.
//
// Checkpoint ("toy." names): proj.weight [C, D], proj.bias [C], blocks.<i>.scale [C] for
// i < blocks. Conditioning file: "text" [L, D] (or [1, L, D]). The network's flow velocity for
// x [B, C, H, W] at sigma = timestep / 1000 is (x - target) / sigma with
//   target[c] = prod_i scale_i[c] * (proj.weight @ mean_l(text) + proj.bias)[c],
// so its denoised prediction is `target` at every sigma and any flow sampler ends on it (with
// CFG: uncond + cfg * (cond - uncond)): a result the test computes by hand.
#pragma once

#include "absl/status/status.h"

namespace raylight::toy_family {

inline constexpr int kChannels = 4;   // C
inline constexpr int kTextWidth = 8;  // D

// The torch-free half (family_registry.h): the head and the worker call it.
absl::Status RegisterToyFamily();
// The torch half (family/diffusion_model.h): the worker calls it.
absl::Status RegisterToyFamilyModels();

}  // namespace raylight::toy_family
