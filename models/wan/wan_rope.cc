#include "models/wan/wan_rope.h"

#include "models/core/rotary.h"

namespace raylight::models::wan {
namespace {

// [positions, D_axis/2] angles pos * 10000^(-2i/D_axis), float64, computed on `device`: at video
// sizes the table is millions of cos/sin, which on the CPU cost tens of milliseconds per forward
// and, with several GPU processes per machine, contend for the cores.
at::Tensor AxisAngles(int64_t positions, int64_t axis_dim, at::Device device) {
  const at::TensorOptions options = at::TensorOptions().dtype(at::kDouble).device(device);
  at::Tensor exponent = at::arange(0, axis_dim, 2, options) / static_cast<double>(axis_dim);
  at::Tensor inv_freq = at::pow(10000.0, -exponent);
  at::Tensor pos = at::arange(positions, options);
  return at::outer(pos, inv_freq);
}

}  // namespace

RopeTable MakeRopeTable(int64_t frames, int64_t height, int64_t width, int64_t head_dim,
                        at::Device device) {
  const int64_t hw_dim = 2 * (head_dim / 6);
  const int64_t t_dim = head_dim - 2 * hw_dim;
  at::Tensor ft = AxisAngles(frames, t_dim, device);   // [F, t/2]
  at::Tensor fh = AxisAngles(height, hw_dim, device);  // [H, h/2]
  at::Tensor fw = AxisAngles(width, hw_dim, device);   // [W, w/2]
  at::Tensor angles = at::cat({ft.view({frames, 1, 1, -1}).expand({frames, height, width, -1}),
                               fh.view({1, height, 1, -1}).expand({frames, height, width, -1}),
                               fw.view({1, 1, width, -1}).expand({frames, height, width, -1})},
                              -1)
                          .reshape({frames * height * width, head_dim / 2});
  return {RotationOf(angles)};
}

at::Tensor ApplyRope(const at::Tensor& x, const RopeTable& table) {
  return ApplyRotary(x, table.rotation);
}

}  // namespace raylight::models::wan
