// raylight-node's configuration: one struct with its defaults, filled by one flag table.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "runtime/rpc/security.h"

namespace CLI {
class App;
}

namespace raylight::node {

struct NodeConfig {
  std::string head_address;        // RAYLIGHT_ADDRESS
  std::string node_id;             // default: <hostname>-<random>
  std::string host = "127.0.0.1";  // the address this machine's workers are reached at
  // CPU workers to run. Default (-1): none when GPUs were found, else 2.
  int num_cpu_workers = -1;
  // Run no GPU workers even when GPUs are present.
  bool no_gpu = false;
  std::string state_dir;      // worker logs go to <state_dir>/logs
  std::string worker_binary;  // default: raylight-worker next to this binary
  // Tokens, TLS and --insecure: the node's own, and passed on to its workers.
  rpc::SecurityFlags security;
  // Directories this machine's workers may read model files from (passed to each worker, which
  // checks every model path a call names against them).
  std::vector<std::string> model_roots;
  // A crashed worker is restarted after this delay, doubling per crash up to the maximum, reset
  // once a worker has run for `stable_after`.
  absl::Duration restart_backoff = absl::Milliseconds(200);
  absl::Duration max_restart_backoff = absl::Seconds(10);
  absl::Duration stable_after = absl::Seconds(30);
};

void AddNodeFlags(CLI::App& app, NodeConfig& config);

}  // namespace raylight::node
