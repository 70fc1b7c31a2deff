#include "runtime/common/file_store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "runtime/common/int_value.h"
#include "runtime/common/status_macros.h"

namespace raylight {
namespace {

constexpr char kKeyFilePrefix[] = "k_";

absl::Status ErrnoError(absl::string_view what, absl::string_view path) {
  return absl::InternalError(absl::StrCat(what, " '", path, "': ", std::strerror(errno)));
}

// Closes a file descriptor when it goes out of scope.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// An exclusive flock on the store's lock file: serialises read-modify-write across processes.
class DirLock {
 public:
  static absl::StatusOr<std::unique_ptr<DirLock>> Acquire(const std::string& dir) {
    std::string path = dir + "/.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError("cannot open store lock", path);
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        ::close(fd);
        return ErrnoError("cannot lock store", path);
      }
    }
    return std::unique_ptr<DirLock>(new DirLock(fd));
  }
  ~DirLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::Open(std::string dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create store directory '", dir, "': ", ec.message()));
  }
  return std::unique_ptr<FileStore>(new FileStore(std::move(dir)));
}

std::string FileStore::PathOf(absl::string_view key) const {
  // Hex keeps any byte string a valid, flat file name.
  return absl::StrCat(dir_, "/", kKeyFilePrefix, absl::BytesToHexString(key));
}

absl::StatusOr<std::optional<std::string>> FileStore::Read(absl::string_view key) const {
  const std::string path = PathOf(key);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT || !std::filesystem::exists(path)) return std::nullopt;
    return ErrnoError("cannot read store key file", path);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::Status FileStore::Write(absl::string_view key, absl::string_view value) const {
  const std::string path = PathOf(key);
  const std::string tmp = absl::StrCat(dir_, "/.tmp.", ::getpid(), ".", ::gettid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(value.data(), static_cast<std::streamsize>(value.size()));
    if (!out) return ErrnoError("cannot write store key file", tmp);
  }
  // rename() is atomic: readers see the old value or the new one, never a partial file.
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("cannot publish", path);
  return absl::OkStatus();
}

absl::Status FileStore::Set(absl::string_view key, absl::string_view value) {
  return Write(key, value);
}

absl::StatusOr<std::string> FileStore::Get(absl::string_view key,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Watch before the first look, so that a key published between the look and the wait still
  // wakes us.
  ScopedFd notify(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (notify.get() < 0) return ErrnoError("inotify_init1 failed for", dir_);
  if (::inotify_add_watch(notify.get(), dir_.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    return ErrnoError("inotify_add_watch failed for", dir_);
  }
  while (true) {
    RL_ASSIGN_OR_RETURN(std::optional<std::string> value, Read(key));
    if (value.has_value()) return *std::move(value);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError(absl::StrCat("store key '", key, "' was not set within ",
                                                      timeout.count(), " ms (file store ", dir_,
                                                      ")"));
    }
    pollfd pfd{notify.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno != EINTR) return ErrnoError("poll failed on store", dir_);
    // Drain the events; which file changed does not matter, the loop looks again.
    alignas(inotify_event) char buffer[4096];
    while (::read(notify.get(), buffer, sizeof(buffer)) > 0) {
    }
  }
}

absl::StatusOr<bool> FileStore::Check(absl::string_view key) {
  return std::filesystem::exists(PathOf(key));
}

absl::StatusOr<int64_t> FileStore::Add(absl::string_view key, int64_t delta) {
  RL_ASSIGN_OR_RETURN(auto lock, DirLock::Acquire(dir_));
  RL_ASSIGN_OR_RETURN(std::optional<std::string> current, Read(key));
  RL_ASSIGN_OR_RETURN(int64_t value,
                      store_internal::ParseCounter(key, current.value_or(""), current.has_value()));
  RL_ASSIGN_OR_RETURN(value, store_internal::AddToCounter(key, value, delta));
  RL_RETURN_IF_ERROR(Write(key, absl::StrCat(value)));
  return value;
}

absl::StatusOr<std::string> FileStore::CompareSet(absl::string_view key, absl::string_view expected,
                                                  absl::string_view desired) {
  RL_ASSIGN_OR_RETURN(auto lock, DirLock::Acquire(dir_));
  RL_ASSIGN_OR_RETURN(std::optional<std::string> current, Read(key));
  if (!current.has_value()) {
    if (!expected.empty()) return std::string(expected);
    RL_RETURN_IF_ERROR(Write(key, desired));
    return std::string(desired);
  }
  if (*current == expected) {
    RL_RETURN_IF_ERROR(Write(key, desired));
    return std::string(desired);
  }
  return *current;
}

absl::StatusOr<bool> FileStore::Delete(absl::string_view key) {
  RL_ASSIGN_OR_RETURN(auto lock, DirLock::Acquire(dir_));
  const std::string path = PathOf(key);
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return ErrnoError("cannot delete store key file", path);
}

absl::StatusOr<int64_t> FileStore::NumKeys() {
  int64_t count = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (entry.path().filename().string().starts_with(kKeyFilePrefix)) ++count;
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list store ", dir_, ": ", ec.message()));
  return count;
}

}  // namespace raylight
