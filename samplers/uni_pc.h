// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework"), multistep, data
// prediction, B(h) = h ("bh1", ComfyUI's uni_pc) or B(h) = e^h - 1 ("bh2", uni_pc_bh2), as
// ComfyUI runs it (comfy/extra_samplers/uni_pc.py): the VE sigmas are read as a VP schedule
// (alpha = 1/sqrt(1 + sigma^2)), order min(3, steps - 1) with lower orders for the first and last
// steps, no corrector on the last step, and a final sigma of 0 replaced by 0.001.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "absl/status/statusor.h"
#include "samplers/step_model.h"

namespace raylight::samplers::internal {

enum class UniPcVariant { kBh1, kBh2 };

absl::StatusOr<at::Tensor> UniPc(StepModel& model, at::Tensor x, const std::vector<double>& sigmas,
                                 UniPcVariant variant);

}  // namespace raylight::samplers::internal
