// One strided copy as 2D memcpys: what PutToPeer enqueues into a peer's mapped memory (where
// they run on the copy engines; inside one device a memcpy runs on the SMs no faster than
// PyTorch's copy_, so CopyRows does not use it). Dimensions are coalesced where both
// layouts are contiguous across them, the innermost dense run becomes the row width, the next
// dimension the rows, and what is left is looped over (one cudaMemcpy2DAsync per outer index).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace raylight::comm {

// Copies `sizes` elements of `element` bytes from `source` (strides `source_strides`, in
// elements) to `target` (strides `target_strides`) on `stream`. InvalidArgument, with nothing
// enqueued, where the layout is not rows (overlapping rows) or needs more than 4096 row copies.
absl::Status EnqueueStridedCopy(void* target, absl::Span<const int64_t> target_strides,
                                const void* source, absl::Span<const int64_t> source_strides,
                                absl::Span<const int64_t> sizes, int64_t element,
                                cudaStream_t stream);

}  // namespace raylight::comm
