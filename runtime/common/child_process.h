// Starting, watching and reaping child processes: the node agent's workers, raylightctl's
// daemons, and the processes that integration tests start. Exit is observed through a pidfd, so
// callers wait on a file descriptor (poll, or Boost.Asio) instead of sleeping.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight {

struct SpawnOptions {
  // stdout and stderr are appended here; empty: inherited.
  std::string log_path;
  // Start a new session (setsid): the child outlives its parent's terminal (daemons).
  bool new_session = false;
  // Added to (or replacing, for the same name) the parent's environment.
  std::vector<std::pair<std::string, std::string>> env;
};

class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                            const SpawnOptions& options);
  // Shorthand used by tests: stdout and stderr appended to `log_path`.
  static absl::StatusOr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                            const std::string& log_path);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();  // kills and reaps a child still running (unless Release()d)

  // Waits until the child exits or `timeout` passes (then kills it and says so).
  // Returns the exit code, or 128 + signal for a child ended by a signal.
  absl::StatusOr<int> Wait(std::chrono::milliseconds timeout);
  // The exit code if the child has exited (reaping it), nullopt while it runs.
  std::optional<int> TryWait();
  void Kill();
  void Signal(int signal_number);
  // Gives up ownership: the destructor leaves the child running (daemons).
  void Release();

  pid_t pid() const { return pid_; }
  // Readable once the child has exited (for poll or an Asio stream_descriptor).
  int pidfd() const { return pidfd_; }
  bool reaped() const { return reaped_; }
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

 private:
  ChildProcess(pid_t pid, int pidfd, std::string log_path)
      : pid_(pid), pidfd_(pidfd), log_path_(std::move(log_path)) {}
  int Reap();

  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  bool released_ = false;
  std::string log_path_;
};

// Describes an exit code from Wait/TryWait: "exit code 3" or "signal 9 (Killed)".
std::string DescribeExit(int code);

}  // namespace raylight
