// Creates libtorch's c10d::ProcessGroupGloo. This is the only place that includes Gloo headers
// (see the .cc): everything else sees the backend through c10d::Backend.
#pragma once

#include <chrono>
#include <string>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace raylight::comm {

// Rendezvouses through `store` (blocking, bounded by `timeout`) and returns the connected
// backend. `hostname` is the address this rank listens on and announces to its peers (empty:
// resolve this machine's hostname, falling back to loopback). Throws c10 errors, like c10d.
c10::intrusive_ptr<c10d::Backend> CreateGlooBackend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int size,
                                                    std::chrono::milliseconds timeout,
                                                    const std::string& hostname);

}  // namespace raylight::comm
