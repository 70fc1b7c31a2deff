// Helpers of the Flux tests: random inputs, and checkpoints with the outside references' forwards
// on them (tests/models/flux_reference.py: diffusers and ComfyUI, each its own random weights in
// its own spelling).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "models/flux/flux_config.h"
#include "models/flux/flux_model.h"

namespace raylight::testing_util {

struct FluxSize {
  int64_t batch = 1, height = 8, width = 12, text_tokens = 7;
};

// Fresh random inputs (a new seed per call unless `seed` is given): t in (0, 1), guidance in
// (1, 5) for models that take it, a pooled vector.
models::flux::FluxInputs RandomFluxInputs(const models::flux::FluxConfig& config,
                                          const FluxSize& size, uint64_t seed = 0);

struct FluxReference {
  std::string diffusers_checkpoint;  // diffusers' names; empty when not run
  std::string comfyui_checkpoint;    // BFL's names under model.diffusion_model.; empty when not run
  at::Tensor diffusers;              // [B, 16, H, W] fp32 on the CPU
  at::Tensor comfyui;
};

struct FluxReferenceOptions {
  bool diffusers = true;
  bool comfyui = true;
  std::string device = "cpu";
  std::string dtype = "f32";
};

// Runs flux_reference.py in `dir` for `config` on `inputs` (fresh weight seed per call); Kontext's
// references go to ComfyUI only (diffusers' Flux pipeline places one reference, at no offset).
absl::StatusOr<FluxReference> RunFluxReference(const std::string& dir,
                                               const models::flux::FluxConfig& config,
                                               const models::flux::FluxInputs& inputs,
                                               const FluxReferenceOptions& options = {});

}  // namespace raylight::testing_util
