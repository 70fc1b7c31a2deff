// A Flux conditioning file's values (flux_conditioning_header.h has the layout), for the worker.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

struct FluxConditioning {
  at::Tensor text;      // [1, L, context_dim] fp32
  at::Tensor pooled;    // [1, vec_dim] fp32 (zeros when the file has none)
  double guidance = 0;  // the file's, or the default 3.5
  // Kontext: reference images' LATENTs [1, latent_channels, h, w] (the VAE's space), in order.
  std::vector<at::Tensor> reference_latents;
};

// Checks the header, then reads the values as fp32; NaN or infinity is an error naming the field.
absl::StatusOr<FluxConditioning> ParseFluxConditioning(absl::string_view bytes,
                                                       const std::string& source,
                                                       const FluxConfig& config);

// Writes one (for tests and tools).
absl::Status WriteFluxConditioning(const std::string& path, const FluxConditioning& conditioning);

}  // namespace raylight::models::flux
