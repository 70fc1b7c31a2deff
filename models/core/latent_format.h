// A latent space as ComfyUI describes it (comfy/latent_formats.py): the channel count, the
// normalisation between the VAE's latent and the model's, and the preview projection. One place
// per format: the samplers, the job, previews and (later) the VAE all read it here.
//
// Two spaces, and which one a tensor is in matters at every boundary:
//   the VAE's latent   what ComfyUI's LATENT holds (in a workflow and in a .latent file), what a
//   VAE
//                      encodes to and decodes from; every latent that enters or leaves the cluster
//   the model's space  (vae - mean) * scale_factor / std per channel: what the network denoises,
//                      only inside a sampling run (ComfyUI's process_in / process_out).
// Torch-free: the tensor functions take at::Tensor by reference, declared, not included.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace at {
class Tensor;
}

namespace raylight::models {

struct LatentFormat {
  const char* name = "";
  int64_t channels = 0;
  double scale_factor = 1.0;
  // Subtracted before the scale (SD3, Flux: (latent - shift) * scale); 0 for the others.
  double shift_factor = 0.0;
  // Per channel; empty: no shift and no per-channel scale.
  std::vector<float> mean, std;
  // Latent2RGB: each channel's (R, G, B) weight, then the bias; applied to the model's space.
  std::vector<std::array<float, 3>> rgb_factors;
  std::array<float, 3> rgb_bias = {0, 0, 0};
  // Latent2RGB over p x p patches folded into the channels (FLUX.2's 128 = 32 x 2 x 2, as
  // ComfyUI's latent_rgb_factors_reshape unfolds them): channel c p^2 + i p + j is factor c's
  // value at pixel (h p + i, w p + j), so channels = rgb_factors.size() x p^2.
  int64_t rgb_patch = 1;
};

// Wan 2.1 (every size) and Wan 2.2 A14B: 16 channels.
const LatentFormat& Wan21LatentFormat();
// Wan 2.2 TI2V-5B: 48 channels.
const LatentFormat& Wan22LatentFormat();

// Flux.1 (dev, schnell, Krea, Kontext): 16 channels, a shift and a scale.
const LatentFormat& Flux1LatentFormat();
// FLUX.2: 128 channels (its VAE's 32 in 2x2 patches), no scale or shift.
const LatentFormat& Flux2LatentFormat();

// The Wan format with this many channels; an error names the known counts.
absl::StatusOr<const LatentFormat*> LatentFormatForChannels(int64_t channels);

// ComfyUI's process_in: a VAE latent [B, C, ...] (channels on dim 1) to the model's space.
at::Tensor ProcessIn(const LatentFormat& format, const at::Tensor& latent);
// ComfyUI's process_out: the model's space back to the VAE's latent.
at::Tensor ProcessOut(const LatentFormat& format, const at::Tensor& latent);

}  // namespace raylight::models
