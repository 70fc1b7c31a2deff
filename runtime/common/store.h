// Store: the rendezvous key-value store shared by the members of a collective group.
//
// The runtime only does rendezvous; communicators (models/parallel/comm) are built from a Store:
// rank 0 publishes the NCCL unique id or Gloo's addresses, the other ranks wait for them. This
// interface is plain C++ (no torch, no protobuf) so that both sides of the design can use it. The
// head's KV service is the production implementation; MemoryStore and FileStore serve one process
// and one machine.
//
// Thread safety: every implementation is safe to call from several threads at once.
// Values are byte strings. Every call that waits takes a timeout and never waits past it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace raylight {

// How long a rendezvous waits for the other ranks by default.
inline constexpr std::chrono::milliseconds kDefaultStoreTimeout = std::chrono::seconds(60);

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // Sets `key` to `value`, replacing any value, and wakes every waiter on `key`.
  [[nodiscard]] virtual absl::Status Set(absl::string_view key, absl::string_view value) = 0;

  // Returns the value of `key`, waiting for it to be set for at most `timeout`.
  // DeadlineExceeded names the key when it did not appear in time.
  [[nodiscard]] virtual absl::StatusOr<std::string> Get(absl::string_view key,
                                                        std::chrono::milliseconds timeout) = 0;

  // Whether `key` is set now. Never waits.
  [[nodiscard]] virtual absl::StatusOr<bool> Check(absl::string_view key) = 0;

  // Adds `delta` to the integer stored at `key` (absent counts as 0; stored as decimal text) and
  // returns the new value. InvalidArgument when the stored value is not an integer.
  [[nodiscard]] virtual absl::StatusOr<int64_t> Add(absl::string_view key, int64_t delta) = 0;

  // Atomically: if the current value equals `expected` (absent equals ""), sets `desired`.
  // Returns the value held afterwards (c10d::Store::compareSet semantics, so that the c10d
  // adapter is exact).
  [[nodiscard]] virtual absl::StatusOr<std::string> CompareSet(absl::string_view key,
                                                               absl::string_view expected,
                                                               absl::string_view desired) = 0;

  // Removes `key`; returns whether it existed.
  [[nodiscard]] virtual absl::StatusOr<bool> Delete(absl::string_view key) = 0;

  // Number of keys set.
  [[nodiscard]] virtual absl::StatusOr<int64_t> NumKeys() = 0;

  // Waits until every key in `keys` is set, all within one `timeout`.
  [[nodiscard]] absl::Status Wait(absl::Span<const std::string> keys,
                                  std::chrono::milliseconds timeout);
};

}  // namespace raylight
