#include "models/core/copy_rows.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>

#include <string>

#include "absl/status/status.h"
#include "models/parallel/comm/strided_copy.h"
#endif

namespace raylight::models {

void CopyRows(const at::Tensor& dst, const at::Tensor& src) {
  TORCH_CHECK(dst.sizes() == src.sizes() && dst.scalar_type() == src.scalar_type(),
              "CopyRows: ", dst.sizes(), " ", dst.scalar_type(), " from ", src.sizes(), " ",
              src.scalar_type());
#ifdef RAYLIGHT_HAVE_CUDA
  // Rows need a dense innermost dimension on both sides; element-wide rows are copy_'s job.
  const auto dense_last = [](const at::Tensor& t) { return t.dim() > 0 && t.stride(-1) == 1; };
  if (dst.is_cuda() && src.is_cuda() && dst.get_device() == src.get_device() && dense_last(dst) &&
      dense_last(src)) {
    const absl::Status status = comm::EnqueueStridedCopy(
        dst.data_ptr(), dst.strides(), src.data_ptr(), src.strides(), dst.sizes(),
        dst.element_size(), c10::cuda::getCurrentCUDAStream(dst.get_device()));
    if (status.ok()) return;
    // InvalidArgument: not rows, or too many of them; copy_ takes any layout.
    TORCH_CHECK(absl::IsInvalidArgument(status), "CopyRows: ", std::string(status.message()));
  }
#endif
  dst.copy_(src);
}

}  // namespace raylight::models
