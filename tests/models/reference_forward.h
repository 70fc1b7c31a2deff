// Runs an outside reference's forward script (qwen_image_reference.py, chroma_reference.py: each
// reference its own random weights in its own spelling, the forward on the given inputs) and
// reads back its checkpoints and predictions.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "models/core/safetensors_tensors.h"

namespace raylight::testing_util {

struct ReferenceForward {
  std::string diffusers_checkpoint, comfyui_checkpoint;  // empty when not run
  at::Tensor diffusers, comfyui;                         // fp32 on the CPU
};

struct ReferenceOptions {
  bool diffusers = true;
  bool comfyui = true;
  std::string device = "cpu";
  std::string dtype = "f32";
};

// `script --config config_json --seed <fresh> --inputs dir/inputs.safetensors --out-dir dir`
// with the ComfyUI tarball and `comfyui_workdir` when options.comfyui.
absl::StatusOr<ReferenceForward> RunReferenceForward(const std::string& script,
                                                     const std::string& config_json,
                                                     const models::NamedTensors& inputs,
                                                     const std::string& dir,
                                                     const std::string& comfyui_workdir,
                                                     const ReferenceOptions& options = {});

}  // namespace raylight::testing_util
