// Internal to samplers/: the denoiser as the sampling loops see it. Numbers the evaluations for
// errors and progress, refuses non-finite output, and reports the first evaluation of each step.
#pragma once

#include <ATen/ATen.h>

#include <chrono>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "samplers/k_samplers.h"

namespace raylight::samplers::internal {

class StepModel {
 public:
  StepModel(const Denoiser& denoiser, const StepCallback& callback, int total)
      : denoiser_(denoiser),
        callback_(callback),
        total_(total),
        start_(std::chrono::steady_clock::now()) {}

  // The first evaluation of step `step` (reported to the callback).
  absl::StatusOr<at::Tensor> Step(int step, const at::Tensor& x, double sigma) {
    auto denoised = Eval(step, x, sigma);
    if (denoised.ok()) Report(step, sigma, x, *denoised);
    return denoised;
  }
  // Further evaluations inside a step (Heun, DPM-2, UniPC's corrector, ...).
  absl::StatusOr<at::Tensor> Eval(int step, const at::Tensor& x, double sigma) {
    auto denoised = denoiser_(x, sigma);
    if (!denoised.ok()) {
      return absl::Status(denoised.status().code(),
                          absl::StrCat("step ", step + 1, "/", total_, " (sigma ", sigma,
                                       "): ", denoised.status().message()));
    }
    if (!at::isfinite(*denoised).all().item<bool>()) {
      return absl::FailedPreconditionError(absl::StrCat("step ", step + 1, "/", total_, " (sigma ",
                                                        sigma,
                                                        "): the model produced NaN or infinity"));
    }
    return denoised;
  }
  void Report(int step, double sigma, const at::Tensor& x, const at::Tensor& denoised) {
    if (!callback_) return;
    StepInfo info;
    info.step = step;
    info.total = total_;
    info.sigma = sigma;
    info.elapsed_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    info.x = &x;
    info.denoised = &denoised;
    callback_(info);
  }

 private:
  const Denoiser& denoiser_;
  const StepCallback& callback_;
  const int total_;
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace raylight::samplers::internal
