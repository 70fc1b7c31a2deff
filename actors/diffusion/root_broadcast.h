// A tensor that rank 0 of a group made (an encoded prompt, an encoded image) sent to every rank,
// or rank 0's failure to make it shared with all: every rank returns the tensor or an error
// together, so that no rank waits on a collective that the others left.
#pragma once

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::actors {

// Collective over `world`. `made`: rank 0's result (ignored elsewhere); float32 tensors of up to
// six dimensions, or undefined (then undefined on every rank). Returns a CPU float32 tensor on
// every rank.
absl::StatusOr<at::Tensor> BroadcastFromRoot(comm::Communicator& world,
                                             const absl::StatusOr<at::Tensor>& made,
                                             at::Device device);

}  // namespace raylight::actors
