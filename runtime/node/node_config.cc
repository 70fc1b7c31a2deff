#include "runtime/node/node_config.h"

#include <CLI/CLI.hpp>

namespace raylight::node {

void AddNodeFlags(CLI::App& app, NodeConfig& config) {
  app.add_option("--address", config.head_address, "raylight-head address (host:port)")
      ->required()
      ->envname("RAYLIGHT_ADDRESS");
  app.add_option("--node-id", config.node_id, "this node's id (default: hostname-random)");
  app.add_option("--host", config.host, "address this machine's workers are reached at")
      ->capture_default_str();
  app.add_option("--num-cpu-workers", config.num_cpu_workers,
                 "CPU workers to run (default: 2 without GPUs, else 0)");
  app.add_flag("--no-gpu", config.no_gpu, "run no GPU workers");
  app.add_option("--state-dir", config.state_dir, "directory for worker logs")
      ->required()
      ->envname("RAYLIGHT_STATE_DIR");
  app.add_option("--worker-binary", config.worker_binary, "the raylight-worker executable");
  rpc::AddSecurityFlags(app, config.security);
  app.add_option("--model-root", config.model_roots,
                 "a directory workers may read model files from (repeatable)")
      ->envname("RAYLIGHT_MODEL_ROOTS")
      ->delimiter(':');
}

}  // namespace raylight::node
