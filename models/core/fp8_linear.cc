#include "models/core/fp8_linear.h"

#include "absl/strings/match.h"

namespace raylight::models {
namespace {

// A row of zeros keeps a finite scale (its values quantise to zero whatever the scale).
constexpr double kSmallestScale = 1e-12;

at::Tensor ToE4m3(const at::Tensor& scaled) {
  return scaled.clamp(-kFp8E4m3Max, kFp8E4m3Max).to(at::kFloat8_e4m3fn);
}

}  // namespace

std::string Fp8ScaleName(const std::string& weight_name) { return weight_name + "_scale"; }

bool IsFp8Linear(const std::string& name, at::IntArrayRef shape) {
  return absl::EndsWith(name, ".weight") && shape.size() == 2 && shape[0] % 16 == 0 &&
         shape[1] % 16 == 0;
}

Fp8Rows QuantizeFp8Rows(const at::Tensor& weight) {
  const at::Tensor rows = weight.to(at::kFloat);
  const at::Tensor scale = (rows.abs().amax(1) / kFp8E4m3Max).clamp_min(kSmallestScale);
  return {ToE4m3(rows / scale.unsqueeze(1)), scale};
}

Fp8Rows QuantizeFp8Tokens(const at::Tensor& x) {
  const at::Tensor rows = x.reshape({-1, x.size(-1)});
  // abs and amax are exact in x's own dtype; only the scale and the division need fp32.
  const at::Tensor scale =
      (rows.abs().amax(1, /*keepdim=*/true).to(at::kFloat) / kFp8E4m3Max).clamp_min(kSmallestScale);
  return {ToE4m3(rows / scale), scale};
}

at::Tensor Fp8Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scale,
                     const at::Tensor& bias) {
  TORCH_CHECK(weight.scalar_type() == at::kFloat8_e4m3fn && weight.dim() == 2,
              "Fp8Linear: the weight must be e4m3 [N, K]");
  TORCH_CHECK(x.size(-1) == weight.size(1), "Fp8Linear: input width ", x.size(-1),
              " against the weight's ", weight.size(1));
  const Fp8Rows tokens = QuantizeFp8Tokens(x);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = weight.size(0);
  at::Tensor y;
  if (x.is_cuda()) {
    // Rowwise scaling takes bf16 out and a bf16 bias.
    const c10::optional<at::Tensor> bf16_bias =
        bias.defined() ? c10::optional<at::Tensor>(bias.to(at::kBFloat16)) : c10::nullopt;
    y = at::_scaled_mm(tokens.values, weight.t(), tokens.scale, scale.unsqueeze(0), bf16_bias,
                       /*scale_result=*/c10::nullopt, at::kBFloat16, /*use_fast_accum=*/false);
  } else {
    y = at::matmul(tokens.values.to(at::kFloat) * tokens.scale,
                   (weight.to(at::kFloat) * scale.unsqueeze(1)).t());
    if (bias.defined()) y = y + bias.to(at::kFloat);
  }
  return y.to(x.scalar_type()).reshape(out_shape);
}

}  // namespace raylight::models
