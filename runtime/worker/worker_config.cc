#include "runtime/worker/worker_config.h"

#include <CLI/CLI.hpp>

namespace raylight::worker {

void AddWorkerFlags(CLI::App& app, WorkerConfig& config) {
  app.add_option("--head", config.head_address, "raylight-head address (host:port)")
      ->required()
      ->envname("RAYLIGHT_ADDRESS");
  app.add_option("--node-id", config.node_id, "id of the node agent that started this worker")
      ->required();
  app.add_option("--slot", config.slot, "index of this worker on its node");
  app.add_option("--gpu", config.gpu_index, "CUDA device ordinal; -1 for a CPU worker");
  app.add_option("--host", config.host, "address peers reach this worker at");
  app.add_option("--port", config.port, "port to serve on (0: any free port)");
  rpc::AddSecurityFlags(app, config.security);
  app.add_option("--model-root", config.model_roots,
                 "a directory actors may read model files from (repeatable)");
  app.add_option("--state-dir", config.state_dir,
                 "the node's state directory (job journals that outlive this process)");
  app.add_option("--instance-id", config.instance_id, "id of this worker process");
  app.add_option("--parent-pid", config.parent_pid, "exit when this process exits");
}

}  // namespace raylight::worker
