// Random GGUF quantisation blocks with valid scales, for checkpoints made at real sizes for
// benchmarks and GPU tests (no real weights can be downloaded on the build or GPU machines, and
// gguf-py, the reference writer, is not installed on the GPU machine). Not a quantiser: the blocks
// are random bytes whose float16 scale fields hold small finite values (|N(0, 1)| x 1e-4, about the
// size of trained weights once multiplied by the quantised integers).
#pragma once

#include <ATen/ATen.h>

#include "models/core/ggml_type.h"

namespace raylight::models {

// `values` values (a multiple of the type's block) of `type` as a CPU kByte tensor.
at::Tensor RandomGgufBlocks(GgmlType type, int64_t values, at::Generator& generator,
                            at::Device device);

}  // namespace raylight::models
