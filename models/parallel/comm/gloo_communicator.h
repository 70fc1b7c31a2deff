// The CPU backend: a Communicator over libtorch's c10d::ProcessGroupGloo (the Gloo that libtorch
// already carries). Operations have finished when they return.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "models/parallel/comm/communicator.h"
#include "runtime/common/store.h"

namespace raylight::comm {

struct GlooOptions {
  // Bound on rendezvous and on each operation.
  std::chrono::milliseconds timeout = kDefaultCommTimeout;
  // The address this rank listens on and announces to its peers. Empty: resolve this machine's
  // hostname, else loopback. Multi-machine groups pass the node's routable address.
  std::string hostname;
  // Namespaces the rendezvous keys, so that several groups can share one store.
  std::string group_name = "default";
  // Fired by another thread, it ends the rendezvous and every operation at once (see
  // Communicator::Abort); null: the communicator makes its own. Inherited by Split.
  std::shared_ptr<AbortSignal> abort_signal;
};

// Collective over `size` processes: blocks until every rank has joined through `store`, or fails
// with DeadlineExceeded after `options.timeout` (Aborted when the signal fires first). `store`
// must outlive the communicator.
absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(Store& store, int rank,
                                                                     int size,
                                                                     const GlooOptions& options);

}  // namespace raylight::comm
