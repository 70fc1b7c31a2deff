// FileStore: a Store kept in a directory, shared by the processes of one machine (and by tests
// that start ranks as separate processes). One file per key, written atomically (temp + rename);
// read-modify-write operations hold an flock on the directory's lock file; waiting uses inotify
// on the directory, so a waiter wakes when the key appears rather than polling.
//
// Needs a local filesystem (inotify does not see writes made on other NFS clients): across
// machines use the head's KV service.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "runtime/common/store.h"

namespace raylight {

class FileStore final : public Store {
 public:
  // Opens (creating if needed) the store in `dir`.
  static absl::StatusOr<std::unique_ptr<FileStore>> Open(std::string dir);

  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key,
                                  std::chrono::milliseconds timeout) override;
  absl::StatusOr<bool> Check(absl::string_view key) override;
  absl::StatusOr<int64_t> Add(absl::string_view key, int64_t delta) override;
  absl::StatusOr<std::string> CompareSet(absl::string_view key, absl::string_view expected,
                                         absl::string_view desired) override;
  absl::StatusOr<bool> Delete(absl::string_view key) override;
  absl::StatusOr<int64_t> NumKeys() override;

  const std::string& dir() const { return dir_; }

 private:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {}

  std::string PathOf(absl::string_view key) const;
  // The value of `key`, or nullopt when it is not set.
  absl::StatusOr<std::optional<std::string>> Read(absl::string_view key) const;
  absl::Status Write(absl::string_view key, absl::string_view value) const;

  const std::string dir_;
};

}  // namespace raylight
