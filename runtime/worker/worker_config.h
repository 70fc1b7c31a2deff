// raylight-worker's configuration: one struct, filled by one flag table (AddWorkerFlags). The node
// agent passes these flags when it spawns a worker.
#pragma once

#include <string>
#include <vector>

#include "runtime/rpc/security.h"

namespace CLI {
class App;
}

namespace raylight::worker {

struct WorkerConfig {
  std::string head_address;  // host:port of raylight-head
  std::string node_id;
  int slot = 0;                    // index of this worker on its node
  int gpu_index = -1;              // CUDA ordinal, -1 for a CPU worker
  std::string host = "127.0.0.1";  // the address peers and clients reach this worker at
  int port = 0;                    // 0: any free port (reported to the head)
  rpc::SecurityFlags security;     // tokens, TLS, --insecure (as the node agent passes them)
  // Directories actors may read model files from (ActorEnvironment::file_roots).
  std::vector<std::string> model_roots;
  // The node's state directory (ActorEnvironment::state_dir); empty: none.
  std::string state_dir;
  int parent_pid = 0;  // exit when this process (the node agent) is gone
  // Names this process; the node agent chooses it so that it can report the exit. Default: random.
  std::string instance_id;
};

void AddWorkerFlags(CLI::App& app, WorkerConfig& config);

}  // namespace raylight::worker
