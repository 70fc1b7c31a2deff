#include "models/core/fp8_linear.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "models/core/fp8_quant_cuda.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace raylight::models {
namespace {

// A row of zeros keeps a finite scale (its values quantise to zero whatever the scale).
constexpr double kSmallestScale = 1e-12;

at::Tensor ToE4m3(const at::Tensor& scaled) {
  return scaled.clamp(-kFp8E4m3Max, kFp8E4m3Max).to(at::kFloat8_e4m3fn);
}

// Row maxima to scales, as a multiplication by the float reciprocal of 448 (what libtorch's CUDA
// division by a scalar computes, and the fused kernel too), so every path gives the same bits.
at::Tensor ScaleOf(const at::Tensor& amax) {
  return (amax.to(at::kFloat) * static_cast<float>(1.0 / kFp8E4m3Max)).clamp_min(kSmallestScale);
}

}  // namespace

std::string Fp8ScaleName(const std::string& weight_name) { return weight_name + "_scale"; }

bool IsFp8Linear(const std::string& name, at::IntArrayRef shape) {
  return absl::EndsWith(name, ".weight") && shape.size() == 2 && shape[0] % 16 == 0 &&
         shape[1] % 16 == 0;
}

Fp8Rows QuantizeFp8Rows(const at::Tensor& weight) {
  const at::Tensor rows = weight.to(at::kFloat);
  const at::Tensor scale = ScaleOf(rows.abs().amax(1));
  return {ToE4m3(rows / scale.unsqueeze(1)), scale};
}

Fp8Rows PlaceFp8Rows(const CheckpointTensor& tensor, at::ScalarType dtype, at::Device device,
                     int64_t begin, int64_t end) {
  const int64_t rows = tensor.value_shape()[0];
  const bool whole = end < 0 || (begin == 0 && end == rows);
  if (end < 0) end = rows;
  if (tensor.scale.has_value() && tensor.data.scalar_type() == at::kFloat8_e4m3fn &&
      tensor.patches.empty()) {  // an fp8-scaled file's bytes, as stored
    return {tensor.data.narrow(0, begin, end - begin).to(device),
            at::full({end - begin}, *tensor.scale,
                     at::TensorOptions().dtype(at::kFloat).device(device))};
  }
  return QuantizeFp8Rows(whole ? Materialize(tensor, dtype, device)
                               : MaterializeRows(tensor, begin, end, dtype).to(device));
}

Fp8Rows QuantizeFp8Tokens(const at::Tensor& x, bool fused, Fp8QuantActivation activation) {
  const at::Tensor rows = x.reshape({-1, x.size(-1)});
#ifdef RAYLIGHT_HAVE_CUDA
  const bool kernel_input = rows.scalar_type() == at::kBFloat16 || rows.scalar_type() == at::kFloat;
  if (fused && rows.is_cuda() && kernel_input) {
    const at::Tensor in = rows.contiguous();
    Fp8Rows out{at::empty(in.sizes(), in.options().dtype(at::kFloat8_e4m3fn)),
                at::empty({in.size(0), 1}, in.options().dtype(at::kFloat))};
    const c10::cuda::CUDAGuard guard(in.device());
    const int error = LaunchQuantizeRowsFp8(
        in.const_data_ptr(),
        in.scalar_type() == at::kBFloat16 ? Fp8QuantInput::kBFloat16 : Fp8QuantInput::kFloat32,
        activation, in.size(0), in.size(1), static_cast<uint8_t*>(out.values.data_ptr()),
        out.scale.data_ptr<float>(), c10::cuda::getCurrentCUDAStream(in.device().index()).stream());
    TORCH_CHECK(error == 0, "fp8 quantisation kernel: CUDA error ", error);
    return out;
  }
#endif
  (void)fused;
  const at::Tensor values =
      activation == Fp8QuantActivation::kGeluTanh ? at::gelu(rows, "tanh") : rows;
  // abs and amax are exact in x's own dtype; only the scale and the division need fp32.
  const at::Tensor scale = ScaleOf(values.abs().amax(1, /*keepdim=*/true));
  return {ToE4m3(values / scale), scale};
}

LinearInput::LinearInput(at::Tensor x, Fp8QuantActivation activation)
    : x_(std::move(x)),
      sizes_(x_.sizes().vec()),
      dtype_(x_.scalar_type()),
      activation_(activation) {}

LinearInput::LinearInput(Fp8Rows tokens, std::vector<int64_t> sizes, at::ScalarType dtype,
                         std::function<at::Tensor()> dequantize)
    : dequantize_(std::move(dequantize)),
      sizes_(std::move(sizes)),
      dtype_(dtype),
      tokens_(std::move(tokens)) {
  TORCH_CHECK(!sizes_.empty() && tokens_->values.dim() == 2 &&
                  tokens_->values.size(1) == sizes_.back() &&
                  tokens_->values.size(0) * sizes_.back() == c10::multiply_integers(sizes_),
              "LinearInput: e4m3 tokens of ", tokens_->values.sizes(), " for an input of ",
              at::IntArrayRef(sizes_));
}

const at::Tensor& LinearInput::Value() const {
  if (!x_.defined()) {
    x_ = dequantize_();
    TORCH_CHECK(x_.sizes() == at::IntArrayRef(sizes_) && x_.scalar_type() == dtype_,
                "LinearInput: the dequantised input is not of the declared shape and dtype");
  }
  return x_;
}

at::Tensor LinearInput::Activated() const {
  return activation_ == Fp8QuantActivation::kGeluTanh ? at::gelu(Value(), "tanh") : Value();
}

const Fp8Rows& LinearInput::Tokens() const {
  if (!tokens_.has_value()) tokens_ = QuantizeFp8Tokens(Value(), /*fused=*/true, activation_);
  return *tokens_;
}

LinearInput LinearInput::Narrow(int64_t begin, int64_t count) const {
  LinearInput part(Value().narrow(0, begin, count), activation_);
  if (tokens_.has_value()) {  // x's tokens are row-major over its leading dimensions
    const int64_t rows_each = part.x_.numel() / std::max<int64_t>(count, 1) / sizes_.back();
    part.tokens_ = Fp8Rows{tokens_->values.narrow(0, begin * rows_each, count * rows_each),
                           tokens_->scale.narrow(0, begin * rows_each, count * rows_each)};
  }
  return part;
}

at::Tensor Fp8Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scale,
                     const at::Tensor& bias) {
  return Fp8Linear(LinearInput(x), weight, scale, bias);
}

at::Tensor Fp8Linear(const LinearInput& x, const at::Tensor& weight, const at::Tensor& scale,
                     const at::Tensor& bias) {
  TORCH_CHECK(weight.scalar_type() == at::kFloat8_e4m3fn && weight.dim() == 2,
              "Fp8Linear: the weight must be e4m3 [N, K]");
  TORCH_CHECK(x.sizes().back() == weight.size(1), "Fp8Linear: input width ", x.sizes().back(),
              " against the weight's ", weight.size(1));
  const Fp8Rows& tokens = x.Tokens();
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = weight.size(0);
  at::Tensor y;
  if (tokens.values.is_cuda()) {
    // Rowwise scaling takes bf16 out and a bf16 bias.
    const c10::optional<at::Tensor> bf16_bias =
        bias.defined() ? c10::optional<at::Tensor>(bias.to(at::kBFloat16)) : c10::nullopt;
    // A column slice of a weight (Flux's linear2 parts) is copied to a plain [N, K] first: the
    // GEMM's column-major operand is taken with its leading dimension equal to K.
    const at::Tensor plain = weight.stride(0) == weight.size(1) ? weight : weight.contiguous();
    // Fast accumulation: the trade-off is in fp8_linear.h's header comment.
    y = at::_scaled_mm(tokens.values, plain.t(), tokens.scale, scale.unsqueeze(0), bf16_bias,
                       /*scale_result=*/c10::nullopt, at::kBFloat16, /*use_fast_accum=*/true);
  } else {
    y = at::matmul(tokens.values.to(at::kFloat) * tokens.scale,
                   (weight.to(at::kFloat) * scale.unsqueeze(1)).t());
    if (bias.defined()) y = y + bias.to(at::kFloat);
  }
  return y.to(x.scalar_type()).reshape(out_shape);
}

at::Tensor ModuleLinear(const at::Tensor& x, const WeightSet& w, const std::string& name,
                        int64_t begin, int64_t count) {
  return ModuleLinear(LinearInput(x), w, name, begin, count);
}

at::Tensor ModuleLinear(const LinearInput& x, const WeightSet& w, const std::string& name,
                        int64_t begin, int64_t count) {
  const at::Tensor& weight = w.Get(name + ".weight");
  if (count < 0) count = weight.size(0) - begin;
  const at::Tensor& full_bias = w.Get(name + ".bias");
  const at::Tensor bias = full_bias.defined() ? full_bias.narrow(0, begin, count) : at::Tensor();
  const at::Tensor rows = weight.narrow(0, begin, count);
  if (weight.scalar_type() == at::kFloat8_e4m3fn) {
    return Fp8Linear(x, rows, w.Get(Fp8ScaleName(name + ".weight")).narrow(0, begin, count), bias);
  }
  return at::linear(x.Activated(), rows, bias);
}

}  // namespace raylight::models
