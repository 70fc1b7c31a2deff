#include "models/core/dit_fused.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "models/core/dit_fused_cuda.h"
#endif

namespace raylight::models {
namespace {

std::atomic<bool>& Switch() {
  static std::atomic<bool> on{[] {
    // On unless the environment says 0: measured on an H100 (BENCHMARKS.md), the fused forward
    // is 5% faster than the chains and no farther from fp32.
    const char* env = std::getenv("RAYLIGHT_FUSED_KERNELS");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }()};
  return on;
}

}  // namespace

bool FusedKernels() { return Switch().load(std::memory_order_relaxed); }
void SetFusedKernels(bool on) { Switch().store(on, std::memory_order_relaxed); }

#ifdef RAYLIGHT_HAVE_CUDA
namespace {

// Whether `m` is a per-sample [B, 1, D] or per-token [B, L, D] fp32 modulation of x [B, L, D].
bool ModulationOf(const at::Tensor& m, const at::Tensor& x) {
  return m.scalar_type() == at::kFloat && m.dim() == 3 && m.device() == x.device() &&
         m.size(0) == x.size(0) && m.size(2) == x.size(2) &&
         (m.size(1) == 1 || m.size(1) == x.size(1));
}

// Whether the modulated norm's kernels take x, shift and scale.
bool NormTakes(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
               at::ScalarType dtype) {
  return x.is_cuda() && dtype == at::kBFloat16 && x.scalar_type() == at::kFloat && x.dim() == 3 &&
         x.is_contiguous() && shift.sizes() == scale.sizes() && ModulationOf(shift, x) &&
         ModulationOf(scale, x);
}

}  // namespace
#endif

at::Tensor FusedAddModulatedLayerNorm(const at::Tensor& x, const at::Tensor& branch,
                                      const at::Tensor& gate, const at::Tensor& shift,
                                      const at::Tensor& scale, double eps, at::ScalarType dtype) {
#ifdef RAYLIGHT_HAVE_CUDA
  const bool takes = NormTakes(x, shift, scale, dtype) && branch.scalar_type() == at::kBFloat16 &&
                     branch.sizes() == x.sizes() && branch.is_contiguous() &&
                     branch.device() == x.device() && (!gate.defined() || ModulationOf(gate, x));
  if (!takes) return {};
  const at::Tensor sh = shift.contiguous(), sc = scale.contiguous();
  const at::Tensor g = gate.defined() ? gate.contiguous() : at::Tensor();
  const int64_t rows = x.size(0) * x.size(1), cols = x.size(2);
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(at::kBFloat16));
  const c10::cuda::CUDAGuard guard(x.device());
  const int error = LaunchAddModulatedLayerNorm(
      x.data_ptr<float>(), rows, cols, branch.const_data_ptr(),
      g.defined() ? g.const_data_ptr<float>() : nullptr,
      g.defined() && g.size(1) == 1 ? x.size(1) : 1, sh.data_ptr<float>(), sc.data_ptr<float>(),
      shift.size(1) == 1 ? x.size(1) : 1, eps, out.data_ptr(),
      c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
  TORCH_CHECK(error == 0, "fused residual add and modulated layer norm: CUDA error ", error);
  return out;
#else
  (void)x, (void)branch, (void)gate, (void)shift, (void)scale, (void)eps, (void)dtype;
  return {};
#endif
}

at::Tensor FusedModulatedLayerNorm(const at::Tensor& x, const at::Tensor& shift,
                                   const at::Tensor& scale, double eps, at::ScalarType dtype) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (!NormTakes(x, shift, scale, dtype)) return {};
  const at::Tensor sh = shift.contiguous(), sc = scale.contiguous();
  const int64_t rows = x.size(0) * x.size(1), cols = x.size(2);
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(at::kBFloat16));
  const c10::cuda::CUDAGuard guard(x.device());
  const int error = LaunchModulatedLayerNorm(
      x.data_ptr<float>(), rows, cols, sh.data_ptr<float>(), sc.data_ptr<float>(),
      shift.size(1) == 1 ? x.size(1) : 1, eps, out.data_ptr(),
      c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
  TORCH_CHECK(error == 0, "fused modulated layer norm: CUDA error ", error);
  return out;
#else
  (void)x, (void)shift, (void)scale, (void)eps, (void)dtype;
  return {};
#endif
}

at::Tensor FusedRmsNormRope(const at::Tensor& x, const at::Tensor& weight, double eps,
                            const at::Tensor& rotation, int64_t heads) {
#ifdef RAYLIGHT_HAVE_CUDA
  const bool takes = x.is_cuda() && x.scalar_type() == at::kBFloat16 && x.dim() == 3 &&
                     x.is_contiguous() && heads > 0 && x.size(2) % heads == 0 &&
                     (x.size(2) / heads) % 2 == 0 && weight.scalar_type() == at::kBFloat16 &&
                     weight.numel() == x.size(2) && rotation.scalar_type() == at::kComplexFloat &&
                     rotation.dim() == 2 && rotation.size(0) == x.size(1) &&
                     rotation.size(1) == x.size(2) / heads / 2;
  if (!takes) return {};
  const int64_t head_dim = x.size(2) / heads;
  const at::Tensor w = weight.contiguous();
  const at::Tensor turns = at::view_as_real(rotation.contiguous());  // [L, d/2, 2] fp32
  at::Tensor out = at::empty({x.size(0), x.size(1), heads, head_dim}, x.options());
  const c10::cuda::CUDAGuard guard(x.device());
  const int error =
      LaunchRmsNormRope(x.data_ptr(), x.size(0) * x.size(1), x.size(2), w.data_ptr(), eps,
                        turns.data_ptr<float>(), x.size(1), head_dim, out.data_ptr(),
                        c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
  TORCH_CHECK(error == 0, "fused RMS norm + RoPE: CUDA error ", error);
  return out;
#else
  (void)x, (void)weight, (void)eps, (void)rotation, (void)heads;
  return {};
#endif
}

at::Tensor FusedLinearGelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const at::ScalarType dtype = x.scalar_type();
  const bool takes = x.is_cuda() && (dtype == at::kBFloat16 || dtype == at::kHalf) &&
                     x.dim() >= 2 && weight.dim() == 2 && weight.scalar_type() == dtype &&
                     weight.size(1) == x.size(-1) && bias.defined() && bias.dim() == 1 &&
                     bias.scalar_type() == dtype && bias.size(0) == weight.size(0) &&
                     weight.device() == x.device();
  if (!takes) return {};
  const at::Tensor rows = x.reshape({-1, x.size(-1)});
  at::Tensor out = at::_addmm_activation(bias, rows, weight.t(), 1, 1, /*use_gelu=*/true);
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  return out.view(sizes);
}

}  // namespace raylight::models
