// Line-oriented logging for the daemons: `RL_LOG(INFO) << "node " << id << " registered";`
// writes one line "I1122 10:31:02.123456 1234 head_manager.cc:88] node ... registered" to stderr
// (the daemons' stderr is their log file). One write(2) per line, so lines from several threads
// never interleave. Debian's Abseil predates absl/log; this is the small header STYLE.md allows.
#pragma once

#include <sstream>
#include <string_view>

namespace raylight::logging {

enum class Severity { kInfo, kWarning, kError };

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
