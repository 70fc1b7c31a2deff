// A real cluster for integration tests: raylight-head and raylight-node processes on real ports,
// started the way raylightctl starts them, in a temporary state directory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/sdk/client.h"
#include "runtime/common/child_process.h"

namespace raylight::testing_util {

struct ClusterOptions {
  int nodes = 2;
  int cpu_workers_per_node = 2;
  bool gpu = false;          // nodes discover their GPUs and start one worker each (GPU build)
  std::string token;         // the cluster (client) token
  std::string member_token;  // the members' own; empty: the cluster token serves both
  std::string tls_dir;       // the cluster's certificates (rpc::MakeClusterCertificates): TLS
  int heartbeat_ms = 200;
  int deadline_ms = 2000;
  // Where the head is reached; each node advertises node_hosts[i] (default: `host`).
  std::string host = "127.0.0.1";
  std::vector<std::string> node_hosts;
  // Prepended to the head's / node i's argv, e.g. `ip netns exec <ns>` to put it on another
  // "machine" (tests/util/netns.h).
  std::vector<std::string> head_exec_prefix;
  std::vector<std::vector<std::string>> node_exec_prefix;
  // Model roots, given to the head (which resolves job models in them) and to every node (whose
  // workers check the files a call names against them).
  std::vector<std::string> model_roots;
  // Appended to the head's argv.
  std::vector<std::string> head_args;
  // The executables in the bin dir: a test's own builds (a family registered in the test) in
  // place of raylight-head and the node's raylight-worker.
  std::string head_binary = "raylight-head";
  std::string worker_binary;  // empty: the node's default
};

class TestCluster {
 public:
  TestCluster(std::string bin_dir, std::string state_dir, ClusterOptions options);
  ~TestCluster();

  // Starts the head (on `port`, 0: any) and waits until it serves.
  absl::Status StartHead(int port = 0);
  absl::Status StartNode(int index);
  // Head and every node, then waits until all workers registered.
  absl::Status Start();

  std::string address() const;
  int port() const { return port_; }
  ChildProcess& head() { return *head_; }
  ChildProcess& node(int index) { return *nodes_[index]; }
  void KillHead();
  std::unique_ptr<client::Client> Connect(const std::string& token) const;
  std::unique_ptr<client::Client> Connect() const { return Connect(options_.token); }
  const std::string& state_dir() const { return state_dir_; }
  std::string Logs() const;

 private:
  // The security flags of options_ on a daemon's command line and environment.
  void AddSecurity(std::vector<std::string>& argv, SpawnOptions& spawn) const;

  const std::string bin_dir_;
  const std::string state_dir_;
  const ClusterOptions options_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> head_;
  std::vector<std::unique_ptr<ChildProcess>> nodes_;
};

// Waits until `path` exists (inotify on its directory; no polling).
absl::Status WaitForFile(const std::string& path, absl::Duration timeout);

}  // namespace raylight::testing_util
