#include "models/core/rotary.h"

namespace raylight::models {

at::Tensor RotationOf(const at::Tensor& angles) {
  return at::complex(at::cos(angles).to(at::kFloat), at::sin(angles).to(at::kFloat));
}

at::Tensor AxisPositionAngles(const at::Tensor& ids, const std::vector<int64_t>& axes_dim,
                              double theta) {
  const at::TensorOptions options = ids.options().dtype(at::kDouble);
  std::vector<at::Tensor> parts;
  for (size_t axis = 0; axis < axes_dim.size(); ++axis) {
    const int64_t dim = axes_dim[axis];
    const at::Tensor exponent = at::arange(0, dim, 2, options) / static_cast<double>(dim);
    const at::Tensor inv_freq = at::pow(theta, -exponent);
    parts.push_back(at::outer(ids.select(1, static_cast<int64_t>(axis)).to(at::kDouble), inv_freq));
  }
  return at::cat(parts, 1);
}

at::Tensor ApplyRotary(const at::Tensor& x, const at::Tensor& rotation) {
  at::Tensor pairs =
      at::view_as_complex(x.to(at::kFloat).unflatten(-1, {-1, 2}));  // [B, L, H, d/2]
  return at::view_as_real(pairs * rotation.unsqueeze(0).unsqueeze(2))
      .flatten(-2)
      .to(x.scalar_type());
}

}  // namespace raylight::models
