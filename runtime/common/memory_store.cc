#include "runtime/common/memory_store.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "runtime/common/int_value.h"
#include "runtime/common/status_macros.h"

namespace raylight {

absl::Status MemoryStore::Set(absl::string_view key, absl::string_view value) {
  absl::MutexLock lock(&mu_);
  values_[key] = std::string(value);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryStore::Get(absl::string_view key,
                                             std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mu_);
  auto present = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return values_.contains(key); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&present), absl::FromChrono(timeout))) {
    return absl::DeadlineExceededError(
        absl::StrCat("store key '", key, "' was not set within ", timeout.count(), " ms"));
  }
  return values_.find(key)->second;
}

absl::StatusOr<bool> MemoryStore::Check(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  return values_.contains(key);
}

absl::StatusOr<int64_t> MemoryStore::Add(absl::string_view key, int64_t delta) {
  absl::MutexLock lock(&mu_);
  auto it = values_.find(key);
  RL_ASSIGN_OR_RETURN(int64_t value,
                      store_internal::ParseCounter(key, it == values_.end() ? "" : it->second,
                                                   it != values_.end()));
  RL_ASSIGN_OR_RETURN(value, store_internal::AddToCounter(key, value, delta));
  values_[key] = absl::StrCat(value);
  return value;
}

absl::StatusOr<std::string> MemoryStore::CompareSet(absl::string_view key,
                                                    absl::string_view expected,
                                                    absl::string_view desired) {
  absl::MutexLock lock(&mu_);
  auto it = values_.find(key);
  if (it == values_.end()) {
    if (!expected.empty()) return std::string(expected);
    values_[key] = std::string(desired);
    return std::string(desired);
  }
  if (it->second == expected) it->second = std::string(desired);
  return it->second;
}

absl::StatusOr<bool> MemoryStore::Delete(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  return values_.erase(key) > 0;
}

absl::StatusOr<int64_t> MemoryStore::NumKeys() {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(values_.size());
}

}  // namespace raylight
