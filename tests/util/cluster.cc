#include "tests/util/cluster.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "runtime/rpc/certificates.h"
#include "runtime/rpc/security.h"
#include "tests/util/read_file.h"

namespace raylight::testing_util {

absl::Status WaitForFile(const std::string& path, absl::Duration timeout) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return absl::InternalError("inotify_init1 failed");
  inotify_add_watch(fd, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status result = absl::OkStatus();
  while (!std::filesystem::exists(path)) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      result = absl::DeadlineExceededError(absl::StrCat(path, " did not appear"));
      break;
    }
    pollfd pfd{fd, POLLIN, 0};
    poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    char buffer[4096];
    while (read(fd, buffer, sizeof(buffer)) > 0) {
    }
  }
  close(fd);
  return result;
}

TestCluster::TestCluster(std::string bin_dir, std::string state_dir, ClusterOptions options)
    : bin_dir_(std::move(bin_dir)), state_dir_(std::move(state_dir)), options_(options) {
  std::filesystem::create_directories(state_dir_ + "/logs");
}

TestCluster::~TestCluster() {
  // Nodes first (their workers die with them), then the head.
  for (auto& node : nodes_) {
    if (node != nullptr && !node->reaped()) {
      node->Signal(SIGTERM);
      (void)node->Wait(std::chrono::seconds(15));
    }
  }
  if (head_ != nullptr && !head_->reaped()) {
    head_->Signal(SIGTERM);
    (void)head_->Wait(std::chrono::seconds(10));
  }
}

void TestCluster::AddSecurity(std::vector<std::string>& argv, SpawnOptions& spawn) const {
  rpc::SecurityFlags security;
  security.token = options_.token;
  security.member_token = options_.member_token;
  security.tls_dir = options_.tls_dir;
  rpc::PassSecurityFlags(security, argv, spawn.env);
}

std::string TestCluster::address() const { return absl::StrCat(options_.host, ":", port_); }

absl::Status TestCluster::StartHead(int port) {
  const std::string port_file = absl::StrCat(state_dir_, "/head.port");
  std::filesystem::remove(port_file);
  std::vector<std::string> argv = options_.head_exec_prefix;
  argv.insert(argv.end(), {bin_dir_ + "/" + options_.head_binary, absl::StrCat("--port=", port),
                           "--port-file=" + port_file, "--state-dir=" + state_dir_,
                           absl::StrCat("--heartbeat-ms=", options_.heartbeat_ms),
                           absl::StrCat("--deadline-ms=", options_.deadline_ms)});
  for (const std::string& root : options_.model_roots) argv.push_back("--model-root=" + root);
  argv.insert(argv.end(), options_.head_args.begin(), options_.head_args.end());
  SpawnOptions spawn;
  spawn.log_path = state_dir_ + "/logs/head.log";
  AddSecurity(argv, spawn);
  auto head = ChildProcess::Spawn(argv, spawn);
  if (!head.ok()) return head.status();
  head_ = std::make_unique<ChildProcess>(*std::move(head));
  if (auto status = WaitForFile(port_file, absl::Seconds(30)); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat(status.message(), "\n", Logs()));
  }
  std::ifstream(port_file) >> port_;
  return absl::OkStatus();
}

absl::Status TestCluster::StartNode(int index) {
  std::vector<std::string> argv;
  if (index < static_cast<int>(options_.node_exec_prefix.size())) {
    argv = options_.node_exec_prefix[index];
  }
  const std::string host = index < static_cast<int>(options_.node_hosts.size())
                               ? options_.node_hosts[index]
                               : options_.host;
  argv.insert(argv.end(), {bin_dir_ + "/raylight-node", "--address=" + address(),
                           absl::StrCat("--node-id=node", index), "--host=" + host,
                           absl::StrCat("--num-cpu-workers=", options_.cpu_workers_per_node),
                           absl::StrCat("--state-dir=", state_dir_, "/node", index)});
  if (!options_.gpu) argv.push_back("--no-gpu");
  if (!options_.worker_binary.empty()) {
    argv.push_back("--worker-binary=" + bin_dir_ + "/" + options_.worker_binary);
  }
  for (const std::string& root : options_.model_roots) argv.push_back("--model-root=" + root);
  SpawnOptions spawn;
  spawn.log_path = absl::StrCat(state_dir_, "/logs/node", index, ".log");
  AddSecurity(argv, spawn);
  auto node = ChildProcess::Spawn(argv, spawn);
  if (!node.ok()) return node.status();
  if (static_cast<int>(nodes_.size()) <= index) nodes_.resize(index + 1);
  nodes_[index] = std::make_unique<ChildProcess>(*std::move(node));
  return absl::OkStatus();
}

absl::Status TestCluster::Start() {
  if (auto status = StartHead(); !status.ok()) return status;
  for (int i = 0; i < options_.nodes; ++i) {
    if (auto status = StartNode(i); !status.ok()) return status;
  }
  auto client = Connect();
  auto state = client->WaitCluster(options_.nodes, options_.nodes * options_.cpu_workers_per_node,
                                   absl::Seconds(60));
  if (!state.ok())
    return absl::Status(state.status().code(),
                        absl::StrCat(state.status().message(), "\n", Logs()));
  return absl::OkStatus();
}

void TestCluster::KillHead() {
  head_->Kill();
  (void)head_->Wait(std::chrono::seconds(10));
}

std::unique_ptr<client::Client> TestCluster::Connect(const std::string& token) const {
  client::ClientOptions options;
  options.address = address();
  options.token = token;
  if (!options_.tls_dir.empty()) options.tls_ca = options_.tls_dir + "/" + rpc::kCaCertFile;
  return *client::Client::Connect(options);
}

std::string TestCluster::Logs() const {
  std::string out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(state_dir_)) {
    if (entry.path().extension() != ".log") continue;
    std::string text = ReadFileOrEmpty(entry.path().string());
    if (text.size() > 4000) text = "..." + text.substr(text.size() - 4000);
    out += "==== " + entry.path().string() + "\n" + text;
  }
  return out;
}

}  // namespace raylight::testing_util
