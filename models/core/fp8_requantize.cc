#include "models/core/fp8_requantize.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>

#ifdef RAYLIGHT_HAVE_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace raylight::models {
namespace {

at::Generator GeneratorFor(at::Device device, uint64_t seed) {
  at::Generator generator;
#ifdef RAYLIGHT_HAVE_CUDA
  if (device.is_cuda()) generator = at::cuda::detail::createCUDAGenerator(device.index());
#endif
  if (!generator.defined()) generator = at::make_generator<at::CPUGeneratorImpl>();
  generator.set_current_seed(seed);
  return generator;
}

// comfy/float.py manual_stochastic_round_to_float8, op for op (in float16, as ComfyUI computes).
at::Tensor RoundSlice(const at::Tensor& value, at::ScalarType dtype, at::Generator& generator) {
  const bool e4m3 = dtype == at::kFloat8_e4m3fn;
  const int exponent_bits = e4m3 ? 4 : 5, mantissa_bits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  const at::Tensor x = value.to(at::kHalf);
  at::Tensor sign = at::sign(x);
  at::Tensor magnitude = x.abs();
  sign = at::where(magnitude == 0, at::scalar_tensor(0, sign.options()), sign);
  const at::Tensor exponent =
      at::clamp(at::floor(at::log2(magnitude)) + bias, 0, std::pow(2.0, exponent_bits) - 1);
  const at::Tensor normal = ~(exponent == 0);
  const double mantissa_scale = std::pow(2.0, mantissa_bits);
  at::Tensor mantissa =
      at::where(normal, (magnitude / at::pow(2.0, exponent - bias) - 1.0) * mantissa_scale,
                magnitude / std::pow(2.0, -bias + 1 - mantissa_bits));
  mantissa += at::rand(mantissa.sizes(), generator, mantissa.options());
  magnitude.copy_(mantissa.floor() / mantissa_scale);
  sign *= at::where(normal, at::pow(2.0, exponent - bias) * (1.0 + magnitude),
                    std::pow(2.0, -bias + 1) * magnitude);
  const double largest = e4m3 ? 448.0 : 57344.0;
  at::clamp_(sign, -largest, largest);
  return sign;
}

}  // namespace

uint32_t ComfyKeySeed(const std::string& key) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : key) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return crc ^ 0xFFFFFFFFu;
}

at::Tensor StochasticRoundToFp8(const at::Tensor& value, at::ScalarType dtype, uint64_t seed) {
  at::Generator generator = GeneratorFor(value.device(), seed);
  at::Tensor output = at::empty_like(value, value.options().dtype(dtype));
  // ComfyUI rounds in slices of rows, each about 4096 x 4096 values (Python's float division and
  // round-half-even), drawing from one generator in order.
  const double slices = std::max(1.0, static_cast<double>(value.numel()) / (4096.0 * 4096.0));
  const int64_t rows = value.size(0);
  const int64_t slice = std::max<int64_t>(
      1, static_cast<int64_t>(std::nearbyint(static_cast<double>(rows) / slices)));
  for (int64_t begin = 0; begin < rows; begin += slice) {
    const int64_t count = std::min(slice, rows - begin);
    output.narrow(0, begin, count)
        .copy_(RoundSlice(value.narrow(0, begin, count), dtype, generator));
  }
  return output;
}

}  // namespace raylight::models
