// Copies between tensors laid out as rows of contiguous elements with a stride between rows: the
// packing and unpacking around Ulysses' all-to-alls ([B, L, H, D] <-> per-rank head groups).
// PyTorch's generic strided copy kernel computes an offset per element and moves such layouts at
// ~1.4 TB/s on an H200; the rows here are kilobytes long, which one cudaMemcpy2DAsync moves at
// close to memory bandwidth.
#pragma once

#include <ATen/ATen.h>

namespace raylight::models {

// dst.copy_(src) for tensors of the same shape and dtype whose innermost dimension is dense on
// both sides (e.g. [B, L, h, D] slices of [B, L, H, D] along h). On CUDA, one 2D memcpy on the
// current stream per run of rows with one stride (comm::EnqueueStridedCopy, which PutToPeer
// shares: one for [1, L, h, D], B for [B, L, h, D]); anything else, and CPU tensors, go through
// copy_.
void CopyRows(const at::Tensor& dst, const at::Tensor& src);

}  // namespace raylight::models
