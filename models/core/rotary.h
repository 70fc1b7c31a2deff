// Rotary position embedding as the DiTs here apply it: head_dim d holds d/2 pairs (x[2i], x[2i+1])
// (interleaved, not halves), each rotated as a complex number by its token's angle. A model builds
// the angles its own way (Wan: frame, height and width of a grid; Flux: position ids per axis);
// the rotation itself is shared.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace raylight::models {

// cos + i sin of `angles` (float64 [L, d/2]) as complex64 [L, d/2]: a rotation table.
at::Tensor RotationOf(const at::Tensor& angles);

// Angles of positions `ids` (float64 [L, axes]) for axis widths `axes_dim` (each even, summing to
// d): axis a's pairs turn by ids[:, a] * theta^(-2i / axes_dim[a]); [L, d/2] float64.
at::Tensor AxisPositionAngles(const at::Tensor& ids, const std::vector<int64_t>& axes_dim,
                              double theta);

// x: [B, L, H, d] -> the same shape and dtype; rotation: complex64 [L, d/2]. One fp32 complex
// multiply: (x[2i] + i x[2i+1]) * (cos + i sin).
at::Tensor ApplyRotary(const at::Tensor& x, const at::Tensor& rotation);

}  // namespace raylight::models
