#include "runtime/common/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace raylight {
namespace {

// The parent's environment with `overrides` applied, as owned strings.
std::vector<std::string> MergedEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::map<std::string, std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text(*entry);
    size_t eq = text.find('=');
    if (eq == std::string::npos) continue;
    merged[text.substr(0, eq)] = text.substr(eq + 1);
  }
  for (const auto& [name, value] : overrides) merged[name] = value;
  std::vector<std::string> out;
  for (const auto& [name, value] : merged) out.push_back(absl::StrCat(name, "=", value));
  return out;
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                                 const std::string& log_path) {
  SpawnOptions options;
  options.log_path = log_path;
  return Spawn(argv, options);
}

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                                 const SpawnOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("argv: must not be empty");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!options.log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (options.new_session) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  std::vector<char*> env;
  char** envp = environ;
  if (!options.env.empty()) {
    env_storage = MergedEnvironment(options.env);
    for (std::string& entry : env_storage) env.push_back(entry.data());
    env.push_back(nullptr);
    envp = env.data();
  }
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", std::strerror(rc)));
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::InternalError(absl::StrCat("pidfd_open: ", std::strerror(errno)));
  }
  return ChildProcess(pid, pidfd, options.log_path);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      pidfd_(other.pidfd_),
      reaped_(other.reaped_),
      released_(other.released_),
      log_path_(std::move(other.log_path_)) {
  other.pid_ = -1;
  other.pidfd_ = -1;
  other.reaped_ = true;
}

ChildProcess::~ChildProcess() {
  if (!reaped_ && !released_ && pid_ > 0) {
    Kill();
    ::waitpid(pid_, nullptr, 0);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
}

void ChildProcess::Kill() { Signal(SIGKILL); }

void ChildProcess::Signal(int signal_number) {
  if (reaped_ || pid_ <= 0) return;
  // Through the pidfd: never signals a recycled pid.
  ::syscall(SYS_pidfd_send_signal, pidfd_, signal_number, nullptr, 0);
}

void ChildProcess::Release() { released_ = true; }

int ChildProcess::Reap() {
  int status = 0;
  ::waitpid(pid_, &status, 0);
  reaped_ = true;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

absl::StatusOr<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (reaped_) return absl::FailedPreconditionError("child already reaped");
  pollfd pfd{pidfd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    Kill();
    Reap();
    return absl::DeadlineExceededError(
        absl::StrCat("process ", pid_, " still running after ", timeout.count(), " ms; killed"));
  }
  return Reap();
}

std::optional<int> ChildProcess::TryWait() {
  if (reaped_) return std::nullopt;
  pollfd pfd{pidfd_, POLLIN, 0};
  if (::poll(&pfd, 1, 0) <= 0) return std::nullopt;
  return Reap();
}

std::string ChildProcess::ReadLog() const {
  std::ifstream in(log_path_);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string DescribeExit(int code) {
  if (code > 128) {
    return absl::StrCat("signal ", code - 128, " (", strsignal(code - 128), ")");
  }
  return absl::StrCat("exit code ", code);
}

}  // namespace raylight
