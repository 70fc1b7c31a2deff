#include "runtime/common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

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

}  // namespace

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
}

}  // namespace raylight::logging
