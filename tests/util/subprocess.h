// Starting and reaping child processes in tests, with deadlines instead of sleeps.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::testing_util {

class ChildProcess {
 public:
  // Starts argv[0] with `argv`, stdout and stderr appended to `log_path`.
  static absl::StatusOr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                            const std::string& log_path);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();  // kills and reaps a child still running

  // Waits until the child exits or `timeout` passes (then kills it and says so).
  // Returns the exit code, or 128 + signal for a child ended by a signal.
  absl::StatusOr<int> Wait(std::chrono::milliseconds timeout);
  void Kill();

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

 private:
  ChildProcess(pid_t pid, int pidfd, std::string log_path)
      : pid_(pid), pidfd_(pidfd), log_path_(std::move(log_path)) {}

  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  std::string log_path_;
};

}  // namespace raylight::testing_util
