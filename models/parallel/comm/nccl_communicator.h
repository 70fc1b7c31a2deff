// The GPU backend: NCCL used directly (ncclComm_t), one process per GPU.
//
// The process selects its GPU by index (`device_index`); it must not be narrowed with
// CUDA_VISIBLE_DEVICES, which costs NCCL its peer-to-peer fast paths.
//
// Operations are enqueued on the caller's current CUDA stream of that device and return before
// they finish; tensors allocated by the caching allocator on that stream are therefore safe to
// use and free in stream order. A watchdog thread follows every enqueued operation: one that has
// not finished within the timeout (a dead or missing peer) aborts the communicator, and every
// later call, Synchronize() included, returns that error. Creation waits in the store until
// every rank has arrived before entering NCCL, so a rank that never arrives is also an error.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "models/parallel/comm/communicator.h"
#include "runtime/common/store.h"

namespace raylight::comm {

struct NcclOptions {
  // Bound on rendezvous and on each operation (from enqueue to completion on the GPU).
  std::chrono::milliseconds timeout = kDefaultCommTimeout;
  // Namespaces the rendezvous keys, so that several groups can share one store.
  std::string group_name = "default";
  // NCCL's zero-CTA policy: collectives on Workspace memory (AllToAllInto) run on the copy
  // engines instead of SMs, so that they overlap compute without slowing it. Other operations
  // keep NCCL's kernels. Inherited by Split.
  bool copy_engine_exchanges = true;
  // Fired by another thread, it aborts the communicator (ncclCommAbort) and ends a rendezvous at
  // once (see Communicator::Abort); null: the communicator makes its own. Inherited by Split.
  std::shared_ptr<AbortSignal> abort_signal;
};

// Collective over `size` processes: rank 0 publishes the NCCL unique id in `store`, the others
// wait for it, then all wait for each other. `store` is needed only during creation. Group names
// must not be reused within one store (a re-formed group takes a new name).
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(Store& store, int rank,
                                                                     int size, int device_index,
                                                                     const NcclOptions& options);

// Whether this build has the NCCL backend.
bool NcclAvailable();

}  // namespace raylight::comm
