// The CUDA half of the Wan VAE's fused channel RMS norm (+ SiLU), behind a plain C++ interface
// (no torch, no CUDA headers): channel_norm.cc hands it device pointers, strides and the stream.
#pragma once

#include <cstdint>

namespace raylight::models::vae {

enum class NormElement { kFloat32, kBFloat16, kFloat16 };

// A tensor [d0, C, d1, d2, d3] (channels second; a 4-D one has d1 = 1) as the kernel walks it:
// positions are (d0, d1, d2, d3), each normalised over its C channels. Strides in elements.
struct ChannelNormLayout {
  int64_t sizes[4];
  int64_t in_strides[4];
  int64_t out_strides[4];
  int64_t channels;
  int64_t in_channel_stride;
  int64_t out_channel_stride;
};

// out = [silu](in / max(||in||_2 over channels, eps) * scale * gamma[c]), computed in float32 and
// rounded once to the element type. `gamma` is `channels` float32 values in device memory.
// Returns the cudaError_t of the launch (0: launched).
int LaunchChannelRmsNorm(const void* in, void* out, const float* gamma,
                         const ChannelNormLayout& layout, float scale, float eps, bool silu,
                         NormElement element, void* stream);

}  // namespace raylight::models::vae
