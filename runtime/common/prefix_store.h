// PrefixStore: a view of another Store in which every key is prefixed with "<prefix>/", so that
// several groups and communicators can rendezvous in one store without colliding.
#pragma once

#include <memory>
#include <string>

#include "runtime/common/store.h"

namespace raylight {

class PrefixStore final : public Store {
 public:
  // `base` must outlive this object.
  PrefixStore(std::string prefix, Store& base) : prefix_(std::move(prefix) + "/"), base_(base) {}
  // Owns `base`.
  PrefixStore(std::string prefix, std::unique_ptr<Store> base)
      : prefix_(std::move(prefix) + "/"), owned_(std::move(base)), base_(*owned_) {}

  absl::Status Set(absl::string_view key, absl::string_view value) override {
    return base_.Set(Full(key), value);
  }
  absl::StatusOr<std::string> Get(absl::string_view key,
                                  std::chrono::milliseconds timeout) override {
    return base_.Get(Full(key), timeout);
  }
  absl::StatusOr<bool> Check(absl::string_view key) override { return base_.Check(Full(key)); }
  absl::StatusOr<int64_t> Add(absl::string_view key, int64_t delta) override {
    return base_.Add(Full(key), delta);
  }
  absl::StatusOr<std::string> CompareSet(absl::string_view key, absl::string_view expected,
                                         absl::string_view desired) override {
    return base_.CompareSet(Full(key), expected, desired);
  }
  absl::StatusOr<bool> Delete(absl::string_view key) override { return base_.Delete(Full(key)); }
  // Counts the keys of the whole underlying store (as c10d's PrefixStore does).
  absl::StatusOr<int64_t> NumKeys() override { return base_.NumKeys(); }

  const std::string& prefix() const { return prefix_; }

 private:
  std::string Full(absl::string_view key) const { return prefix_ + std::string(key); }

  const std::string prefix_;
  const std::unique_ptr<Store> owned_;
  Store& base_;
};

}  // namespace raylight
