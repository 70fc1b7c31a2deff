// Helpers shared by the Wan tests: random inputs, checkpoints in a temp dir, diffusers runs.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "models/wan/wan_checkpoint_maker.h"
#include "models/wan/wan_config.h"
#include "models/wan/wan_model.h"

namespace raylight::testing_util {

struct LatentSize {
  int64_t batch = 1, frames = 3, height = 8, width = 12, text_tokens = 20;
};

// Fresh random inputs for `config` (a new seed per call). TI2V gets per-token timesteps with the
// first frame's tokens at t = 0 (the conditioning frame), I2V gets y and CLIP features.
models::wan::WanInputs RandomWanInputs(const models::wan::WanConfig& config,
                                       const LatentSize& size);

// Writes `config` as a random checkpoint (seed given) and returns its path.
std::string MakeCheckpoint(const std::string& dir, const models::wan::WanConfig& config,
                           const models::wan::MakeCheckpointOptions& options,
                           const std::string& name);

// Runs tests/models/diffusers_wan_reference.py on the checkpoint (diffusers spelling) and inputs.
absl::StatusOr<at::Tensor> DiffusersForward(const std::string& dir,
                                            const models::wan::WanConfig& config,
                                            const std::string& checkpoint,
                                            const models::wan::WanInputs& inputs,
                                            const std::string& device, const std::string& dtype,
                                            int time_runs = 0, double* forward_ms = nullptr);

double RelativeL2(const at::Tensor& actual, const at::Tensor& expected);

// Every tensor of a safetensors file (a reference script's output), by name.
absl::StatusOr<std::map<std::string, at::Tensor>> ReadTensors(const std::string& path);

}  // namespace raylight::testing_util
