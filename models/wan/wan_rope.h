// Wan's 3D rotary position embedding (../shared/reference/wan.md, "3D RoPE"): head_dim d splits
// into frame / height / width parts of d - 4*(d/6), 2*(d/6), 2*(d/6) dims, each axis with its own
// frequencies 1 / 10000^(2i / D_axis); pairs (x[2i], x[2i+1]) rotate as complex numbers.
#pragma once

#include <ATen/ATen.h>

namespace raylight::models::wan {

struct RopeTable {
  // cos + i sin of every token's angles, complex64 [L, d/2], tokens ordered frame, height, width.
  at::Tensor rotation;
};

// Angles computed in float64 as the reference does, stored as fp32 on `device`.
RopeTable MakeRopeTable(int64_t frames, int64_t height, int64_t width, int64_t head_dim,
                        at::Device device);

// x: [B, L, H, d] -> same shape and dtype; the rotation runs in fp32.
at::Tensor ApplyRope(const at::Tensor& x, const RopeTable& table);

}  // namespace raylight::models::wan
