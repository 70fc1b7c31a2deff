// The bf16 matmul throughput a GPU sustains, measured in the benchmark's own process: the peak
// model FLOP utilisation is stated against (wan_bench, flux_bench).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>

#include <chrono>

namespace raylight::bench {

// TFLOP/s of 8192-cubed bf16 matmuls on the current GPU (20 timed after 3 warm-ups).
inline double MatmulPeakTflops() {
  auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor a = at::randn({8192, 8192}, options), b = at::randn({8192, 8192}, options);
  for (int i = 0; i < 3; ++i) at::mm(a, b);
  c10::cuda::device_synchronize();
  constexpr int kIters = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIters; ++i) at::mm(a, b);
  c10::cuda::device_synchronize();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * 8192.0 * 8192.0 * 8192.0 * kIters / seconds / 1e12;
}

}  // namespace raylight::bench
