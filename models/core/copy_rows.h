// Copies between tensors laid out as rows of contiguous elements with a stride between rows: the
// packing and unpacking around Ulysses' exchanges ([B, L, H, D] <-> per-rank head groups).
// PyTorch's strided copy kernel computes an offset per element, so on an H200 it moves such
// bf16 layouts at ~1.7 TB/s, and so did a cudaMemcpy2DAsync inside one device; the same rows read
// as 16-byte words (a bitwise view, eight bf16 values per element) move at ~3.9 TB/s
// (tests/bench/ulysses_kernels.py --what memory).
#pragma once

#include <ATen/ATen.h>

namespace raylight::models {

// dst.copy_(src) for tensors of the same shape and dtype, bit for bit: as the widest word (16, 8
// or 4 bytes) whose size divides both layouts' innermost dense extent, offsets and strides;
// element by element where none does. Any device; on the current stream.
void CopyRows(const at::Tensor& dst, const at::Tensor& src);

}  // namespace raylight::models
