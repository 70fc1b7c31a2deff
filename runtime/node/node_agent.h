// NodeAgent: one per machine. Finds the GPUs, runs one raylight-worker per GPU (or per CPU
// slot), restarts a crashed worker with backoff (telling the head at once, so it need not wait
// for the heartbeat deadline), appends each worker's output to <state_dir>/logs/worker-<slot>.log,
// and heartbeats to the head, registering again when the head has restarted.
//
// Everything runs on one Boost.Asio io_context thread: child exits arrive as readable pidfds,
// restarts and heartbeats are timers, head replies are posted back onto it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <vector>

#include "raylight/v1/head.grpc.pb.h"
#include "runtime/common/child_process.h"
#include "runtime/common/gpu_info.h"
#include "runtime/node/node_config.h"
#include "runtime/rpc/auth.h"

namespace raylight::node {

class NodeAgent {
 public:
  NodeAgent(NodeConfig config, rpc::ClusterToken token, boost::asio::io_context& io);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  absl::Status Start();
  // Stops the workers (SIGTERM, then SIGKILL after `grace`) and calls `done` on the io thread.
  void Shutdown(absl::Duration grace, std::function<void()> done);

 private:
  struct Slot {
    int index = 0;
    int gpu_index = -1;
    std::unique_ptr<ChildProcess> process;
    std::unique_ptr<boost::asio::posix::stream_descriptor> exit_watch;
    std::unique_ptr<boost::asio::steady_timer> restart_timer;
    std::string instance_id;  // of the running process, chosen here and passed to it
    absl::Time started;
    absl::Duration backoff;
  };

  void SpawnWorker(Slot& slot);
  void OnWorkerExit(Slot& slot);
  void Register();
  void ArmHeartbeat();
  void Heartbeat();
  void ReportExit(const Slot& slot, const std::string& reason);
  std::string WorkerId(const Slot& slot) const;

  NodeConfig config_;
  const rpc::ClusterToken token_;
  boost::asio::io_context& io_;
  std::unique_ptr<v1::Head::Stub> head_;
  std::vector<GpuDevice> gpus_;
  std::vector<std::unique_ptr<Slot>> slots_;
  boost::asio::steady_timer heartbeat_timer_;
  absl::Duration heartbeat_period_ = absl::Seconds(1);
  bool registered_ = false;
  bool registering_ = false;
  bool reported_outage_ = false;
  bool stopping_ = false;
};

}  // namespace raylight::node
