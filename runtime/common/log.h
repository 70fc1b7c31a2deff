// Line-oriented logging for the daemons: `RL_LOG(INFO) << "node " << id << " registered";`
// writes one line "I1122 10:31:02.123456 1234 head_manager.cc:88] node ... registered" to stderr
// (the daemons' stderr is their log file). One write(2) per line, so lines from several threads
// never interleave. Debian's Abseil predates absl/log; this is the small header STYLE.md allows.
#pragma once

#include <cstdint>
#include <sstream>
#include <string_view>

namespace raylight::logging {

enum class Severity { kInfo, kWarning, kError };

// Size-based rotation for a daemon whose stderr is its log file (as ChildProcess opens it): once
// the file passes `max_bytes`, it is renamed to "<file>.1" (replacing the previous one) and a new
// file takes its place on stdout and stderr; a log thus holds at most about 2 x max_bytes
// (issue #23, item 10: logs never rotated). Does nothing when stderr is not a regular file.
// `max_bytes` <= 0: RAYLIGHT_LOG_MAX_BYTES, else 256 MiB. Call once, early in main.
void EnableRotation(int64_t max_bytes = 0);

class LogLine {
 public:
  LogLine(Severity severity, const char* file, int line);
  ~LogLine();  // writes the line
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

}  // namespace raylight::logging

#define RL_LOG_SEVERITY_INFO ::raylight::logging::Severity::kInfo
#define RL_LOG_SEVERITY_WARNING ::raylight::logging::Severity::kWarning
#define RL_LOG_SEVERITY_ERROR ::raylight::logging::Severity::kError
#define RL_LOG(severity) \
  ::raylight::logging::LogLine(RL_LOG_SEVERITY_##severity, __FILE__, __LINE__)
