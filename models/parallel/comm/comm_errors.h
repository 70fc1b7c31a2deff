// Turns exceptions thrown by libtorch / c10d into a Status at the communicator boundary.
#pragma once

#include <exception>
#include <string_view>

#include "absl/status/status.h"

namespace raylight::comm {

// `op` names the operation; timeouts become DeadlineExceeded, network failures Unavailable.
absl::Status StatusFromException(absl::string_view op, const std::exception& e);

// Runs `fn` (returning absl::Status or StatusOr), turning any exception into a Status.
template <typename Fn>
auto CatchAll(absl::string_view op, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return StatusFromException(op, e);
  }
}

}  // namespace raylight::comm
