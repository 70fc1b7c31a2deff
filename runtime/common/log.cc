#include "runtime/common/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>

namespace raylight::logging {
namespace {

char SeverityLetter(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return 'I';
    case Severity::kWarning:
      return 'W';
    case Severity::kError:
      return 'E';
  }
  return '?';
}

std::atomic<int64_t> rotate_at{0};            // 0: rotation off
std::atomic<int64_t> written_since_check{0};  // bytes since the last size check
std::mutex rotation_mu;

// Checks the file's size every rotate_at / 16 bytes written; rotates past rotate_at.
void MaybeRotate(size_t written) {
  const int64_t limit = rotate_at.load(std::memory_order_relaxed);
  if (limit <= 0) return;
  if (written_since_check.fetch_add(static_cast<int64_t>(written)) + static_cast<int64_t>(written) <
      limit / 16) {
    return;
  }
  std::lock_guard<std::mutex> lock(rotation_mu);
  written_since_check.store(0);
  struct stat info {};
  if (fstat(STDERR_FILENO, &info) != 0 || !S_ISREG(info.st_mode) || info.st_size < limit) return;
  char path[4096];
  const ssize_t n = readlink("/proc/self/fd/2", path, sizeof(path) - 1);
  if (n <= 0) return;
  path[n] = '\0';
  const std::string file(path), old = file + ".1";
  if (std::rename(file.c_str(), old.c_str()) != 0) return;
  const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;  // keeps writing to the renamed file
  dup2(fd, STDOUT_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
}

}  // namespace

void EnableRotation(int64_t max_bytes) {
  if (max_bytes <= 0) {
    const char* env = std::getenv("RAYLIGHT_LOG_MAX_BYTES");
    max_bytes = env != nullptr ? std::atoll(env) : 0;
    if (max_bytes <= 0) max_bytes = int64_t{256} << 20;
  }
  struct stat info {};
  if (fstat(STDERR_FILENO, &info) != 0 || !S_ISREG(info.st_mode)) return;
  rotate_at.store(max_bytes);
}

LogLine::LogLine(Severity severity, const char* file, int line) {
  timeval now;
  gettimeofday(&now, nullptr);
  tm local;
  localtime_r(&now.tv_sec, &local);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%m%d %H:%M:%S", &local);
  const char* base = std::strrchr(file, '/');
  char micros[8];
  std::snprintf(micros, sizeof(micros), "%06ld", static_cast<long>(now.tv_usec));
  stream_ << SeverityLetter(severity) << stamp << '.' << micros << ' ' << getpid() << ' '
          << (base ? base + 1 : file) << ':' << line << "] ";
}

LogLine::~LogLine() {
  stream_ << '\n';
  const std::string text = stream_.str();
  // One write: concurrent lines never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
  MaybeRotate(text.size());
}

}  // namespace raylight::logging
