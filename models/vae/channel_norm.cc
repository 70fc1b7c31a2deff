#include "models/vae/channel_norm.h"

#include <cmath>

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "models/vae/channel_norm_cuda.h"
#endif

namespace raylight::models::vae {
namespace {

constexpr double kEps = 1e-12;

at::Tensor Composite(const at::Tensor& x, const at::Tensor& gamma, bool silu) {
  const int64_t channels = x.size(1);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = channels;
  const at::Tensor xf = x.scalar_type() == at::kFloat ? x : x.to(at::kFloat);
  const at::Tensor normalized =
      (xf / xf.norm(2, {1}, /*keepdim=*/true).clamp_min(kEps)).to(x.scalar_type());
  at::Tensor y = normalized * std::sqrt(static_cast<double>(channels)) * gamma.reshape(shape);
  return silu ? at::silu(y) : y;
}

#ifdef RAYLIGHT_HAVE_CUDA
bool Fused(const at::Tensor& x, const at::Tensor& gamma, bool silu, at::Tensor& out) {
  NormElement element;
  switch (x.scalar_type()) {
    case at::kFloat:
      element = NormElement::kFloat32;
      break;
    case at::kBFloat16:
      element = NormElement::kBFloat16;
      break;
    case at::kHalf:
      element = NormElement::kFloat16;
      break;
    default:
      return false;
  }
  const at::Tensor in5 = x.dim() == 4 ? x.unsqueeze(2) : x;
  const at::Tensor out5 = out.dim() == 4 ? out.unsqueeze(2) : out;
  ChannelNormLayout layout{};
  const int dims[4] = {0, 2, 3, 4};
  for (int i = 0; i < 4; ++i) {
    layout.sizes[i] = in5.size(dims[i]);
    layout.in_strides[i] = in5.stride(dims[i]);
    layout.out_strides[i] = out5.stride(dims[i]);
  }
  layout.channels = in5.size(1);
  layout.in_channel_stride = in5.stride(1);
  layout.out_channel_stride = out5.stride(1);
  const at::Tensor gamma_f = gamma.to(at::kFloat).contiguous();
  const c10::cuda::CUDAGuard guard(x.device());
  const int error = LaunchChannelRmsNorm(
      x.const_data_ptr(), out.data_ptr(), gamma_f.const_data_ptr<float>(), layout,
      static_cast<float>(std::sqrt(static_cast<double>(layout.channels))), static_cast<float>(kEps),
      silu, element, c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
  TORCH_CHECK(error == 0, "Wan VAE channel norm: CUDA launch failed (error ", error, ")");
  return true;
}
#endif

}  // namespace

void ChannelRmsNormInto(const at::Tensor& x, const at::Tensor& gamma, bool silu, at::Tensor out) {
  TORCH_CHECK(out.sizes() == x.sizes() && out.scalar_type() == x.scalar_type() &&
                  out.device() == x.device(),
              "Wan VAE channel norm: output does not match the input");
  TORCH_CHECK(gamma.numel() == x.size(1), "Wan VAE channel norm: gamma has ", gamma.numel(),
              " values for ", x.size(1), " channels");
#ifdef RAYLIGHT_HAVE_CUDA
  if (x.is_cuda() && Fused(x, gamma.to(x.device()), silu, out)) return;
#endif
  out.copy_(Composite(x, gamma, silu));
}

at::Tensor ChannelRmsNorm(const at::Tensor& x, const at::Tensor& gamma, bool silu) {
  if (!x.is_cuda()) return Composite(x, gamma, silu);
  at::Tensor out = at::empty_like(x);
  ChannelRmsNormInto(x, gamma, silu, out);
  return out;
}

}  // namespace raylight::models::vae
