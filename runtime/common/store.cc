#include "runtime/common/store.h"

#include "runtime/common/status_macros.h"

namespace raylight {

absl::Status Store::Wait(absl::Span<const std::string> keys, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const std::string& key : keys) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left < std::chrono::milliseconds(0)) left = std::chrono::milliseconds(0);
    RL_RETURN_IF_ERROR(Get(key, left).status());
  }
  return absl::OkStatus();
}

}  // namespace raylight
