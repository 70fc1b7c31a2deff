#include "tests/util/netns.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::testing_util {
namespace {

// posix_spawn does not search PATH, and root's PATH is not always the test's.
const std::string& IpBinary() {
  static const std::string path = [] {
    for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (access(candidate, X_OK) == 0) return std::string(candidate);
    }
    return std::string();
  }();
  return path;
}

// Runs one `ip ...` command; its output goes into the error when it fails.
absl::Status Ip(const std::vector<std::string>& args) {
  TempDir scratch("netns-ip");
  std::vector<std::string> argv = {IpBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToCompletion(argv, scratch.path() + "/out", std::chrono::seconds(20));
}

// Parses "<prefix><pid><one of next>..." (the names Setup makes) and says whether that pid is
// gone; any other name is not ours and is left alone.
bool OwnerIsGone(const std::string& name, const std::string& prefix, absl::string_view next) {
  if (name.rfind(prefix, 0) != 0) return false;
  const char* digits = name.c_str() + prefix.size();
  char* end = nullptr;
  const long pid = std::strtol(digits, &end, 10);
  if (end == digits || pid <= 0 || next.find(*end) == absl::string_view::npos) return false;
  return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// A test killed before its destructor ran (a timeout, a crash) leaves namespaces and links
// behind; they are named after the owning pid, so the next run removes those of dead owners.
void RemoveLeftovers() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", error)) {
    const std::string name = entry.path().filename().string();
    if (OwnerIsGone(name, "rl", "m")) (void)Ip({"netns", "delete", name});
  }
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net", error)) {
    const std::string name = entry.path().filename().string();
    if (OwnerIsGone(name, "rlbr", absl::string_view("", 1)) || OwnerIsGone(name, "rlv", "oi"))
      (void)Ip({"link", "delete", name});
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetnsLab>> NetnsLab::Create(int machines) {
  if (geteuid() != 0) {
    return absl::FailedPreconditionError("network namespaces need root (this test runs as uid " +
                                         std::to_string(geteuid()) + ")");
  }
  if (IpBinary().empty()) return absl::FailedPreconditionError("iproute2's `ip` is not installed");
  RemoveLeftovers();
  std::unique_ptr<NetnsLab> lab(new NetnsLab());
  if (absl::Status status = lab->Setup(machines); !status.ok()) return status;
  return lab;
}

absl::Status NetnsLab::Setup(int machines) {
  // Names and the subnet derive from the pid so that concurrent test processes do not collide.
  const int tag = static_cast<int>(getpid() % 200) + 20;
  const std::string subnet = absl::StrCat("10.213.", tag, ".");
  bridge_ = absl::StrCat("rlbr", getpid());
  if (absl::Status s = Ip({"link", "add", bridge_, "type", "bridge"}); !s.ok()) {
    bridge_.clear();
    return s;
  }
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"addr", "add", subnet + "254/24", "dev", bridge_}, {"link", "set", bridge_, "up"}}) {
    if (absl::Status s = Ip(args); !s.ok()) return s;
  }
  for (int i = 0; i < machines; ++i) {
    const std::string ns = absl::StrCat("rl", getpid(), "m", i);
    const std::string outside = absl::StrCat("rlv", getpid(), "o", i);
    const std::string inside = absl::StrCat("rlv", getpid(), "i", i);
    const std::string address = absl::StrCat(subnet, i + 1);
    if (absl::Status s = Ip({"netns", "add", ns}); !s.ok()) return s;
    namespaces_.push_back(ns);
    addresses_.push_back(address);
    const std::vector<std::vector<std::string>> steps = {
        {"link", "add", outside, "type", "veth", "peer", "name", inside},
        {"link", "set", outside, "master", bridge_},
        {"link", "set", outside, "up"},
        {"link", "set", inside, "netns", ns},
        {"-n", ns, "addr", "add", address + "/24", "dev", inside},
        {"-n", ns, "link", "set", inside, "up"},
        {"-n", ns, "link", "set", "lo", "up"},
    };
    for (const auto& args : steps) {
      if (absl::Status s = Ip(args); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

NetnsLab::~NetnsLab() {
  // Deleting a namespace removes its veth end, which removes the peer on the bridge.
  for (const auto& ns : namespaces_) (void)Ip({"netns", "delete", ns});
  if (!bridge_.empty()) (void)Ip({"link", "delete", bridge_});
}

std::vector<std::string> NetnsLab::ExecPrefix(int index) const {
  return {IpBinary(), "netns", "exec", namespaces_[index]};
}

}  // namespace raylight::testing_util
