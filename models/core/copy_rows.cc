#include "models/core/copy_rows.h"

#include <ATen/TensorUtils.h>

#include <optional>
#include <vector>

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace raylight::models {
namespace {

// Leading dimensions split into separate copies at most this many ways before giving up to copy_.
constexpr int64_t kMaxSplits = 64;

#ifdef RAYLIGHT_HAVE_CUDA
// `t` as [rows, width] with width = its last two dimensions, when a view can express that (no
// copy) and the rows are contiguous: the row stride.
std::optional<int64_t> RowStride(const at::Tensor& t) {
  const int64_t width = t.size(-2) * t.size(-1);
  const int64_t rows = width == 0 ? 0 : t.numel() / width;
  const std::vector<int64_t> shape = {rows, width};
  const std::optional<std::vector<int64_t>> strides =
      at::detail::computeStride(t.sizes(), t.strides(), at::IntArrayRef(shape));
  if (!strides || (width > 1 && (*strides)[1] != 1)) return std::nullopt;
  return (*strides)[0];
}

bool CopyAsRows(const at::Tensor& dst, const at::Tensor& src) {
  if (!dst.is_cuda() || !src.is_cuda() || dst.get_device() != src.get_device()) return false;
  const auto dst_stride = RowStride(dst), src_stride = RowStride(src);
  if (!dst_stride || !src_stride) return false;
  const int64_t element = dst.element_size(), width = dst.size(-2) * dst.size(-1);
  if (dst.numel() == 0) return true;
  const int64_t rows = dst.numel() / width;
  C10_CUDA_CHECK(cudaMemcpy2DAsync(
      dst.data_ptr(), *dst_stride * element, src.data_ptr(), *src_stride * element, width * element,
      rows, cudaMemcpyDeviceToDevice, c10::cuda::getCurrentCUDAStream(dst.get_device())));
  return true;
}
#else
bool CopyAsRows(const at::Tensor&, const at::Tensor&) { return false; }
#endif

}  // namespace

void CopyRows(const at::Tensor& dst, const at::Tensor& src) {
  TORCH_CHECK(dst.sizes() == src.sizes() && dst.scalar_type() == src.scalar_type(),
              "CopyRows: ", dst.sizes(), " ", dst.scalar_type(), " from ", src.sizes(), " ",
              src.scalar_type());
  if (dst.dim() >= 2 && CopyAsRows(dst, src)) return;
  if (dst.dim() > 2 && dst.is_cuda() && dst.size(0) <= kMaxSplits) {
    for (int64_t i = 0; i < dst.size(0); ++i) CopyRows(dst[i], src[i]);
    return;
  }
  dst.copy_(src);
}

}  // namespace raylight::models
