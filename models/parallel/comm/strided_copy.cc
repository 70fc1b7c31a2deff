#include "models/parallel/comm/strided_copy.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace raylight::comm {

absl::Status EnqueueStridedCopy(void* target, absl::Span<const int64_t> target_strides,
                                const void* source, absl::Span<const int64_t> source_strides,
                                absl::Span<const int64_t> sizes, int64_t element,
                                cudaStream_t stream) {
  // Dimensions in bytes, outermost first, without size-1 ones, neighbours merged where both
  // layouts are contiguous across them.
  struct Dim {
    int64_t size, source, target;
  };
  std::vector<Dim> dims;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return absl::OkStatus();
    if (sizes[d] == 1) continue;
    const Dim next = {sizes[d], source_strides[d] * element, target_strides[d] * element};
    if (!dims.empty() && dims.back().source == next.size * next.source &&
        dims.back().target == next.size * next.target) {
      dims.back() = {dims.back().size * next.size, next.source, next.target};
    } else {
      dims.push_back(next);
    }
  }
  // Rows of `width` contiguous bytes: the innermost dimension when both layouts have it dense.
  int64_t width = element;
  if (!dims.empty() && dims.back().source == element && dims.back().target == element) {
    width = dims.back().size * element;
    dims.pop_back();
  }
  Dim rows = {1, width, width};
  if (!dims.empty()) {
    rows = dims.back();
    dims.pop_back();
  }
  if (rows.source < width || rows.target < width) {
    return absl::InvalidArgumentError("strided copy: rows that overlap");
  }
  int64_t copies = 1;
  for (const Dim& d : dims) copies *= d.size;
  constexpr int64_t kMaxCopies = 4096;
  if (copies > kMaxCopies) {
    return absl::InvalidArgumentError(absl::StrCat("strided copy: the layout needs ", copies,
                                                   " row copies (at most ", kMaxCopies, ")"));
  }
  const char* from = static_cast<const char*>(source);
  char* to = static_cast<char*>(target);
  for (int64_t index = 0; index < copies; ++index) {
    int64_t rest = index, source_at = 0, target_at = 0;
    for (auto d = dims.rbegin(); d != dims.rend(); ++d) {
      source_at += (rest % d->size) * d->source;
      target_at += (rest % d->size) * d->target;
      rest /= d->size;
    }
    if (cudaError_t e =
            cudaMemcpy2DAsync(to + target_at, rows.target, from + source_at, rows.source, width,
                              rows.size, cudaMemcpyDeviceToDevice, stream);
        e != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("strided copy: cudaMemcpy2DAsync: ", cudaGetErrorString(e)));
    }
  }
  return absl::OkStatus();
}

}  // namespace raylight::comm
