#include "runtime/worker/worker_main.h"

#include <grpcpp/grpcpp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/common/gpu_info.h"
#include "runtime/common/ids.h"
#include "runtime/common/log.h"
#include "runtime/common/prefix_store.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_store.h"
#include "runtime/worker/head_link.h"
#include "runtime/worker/worker_config.h"
#include "runtime/worker/worker_service.h"

namespace raylight::worker {
int RunWorker(int argc, char** argv, const ActorRegistry& registry) {
  WorkerConfig config;
  CLI::App app("raylight-worker: hosts one actor for a raylight-node");
  AddWorkerFlags(app, config);
  CLI11_PARSE(app, argc, argv);

  // A worker never outlives its node agent (the agent restarts workers; orphans would hold GPUs).
  if (config.parent_pid > 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != config.parent_pid) return 1;  // the agent died before we got here
  }
  umask(0077);
  logging::EnableRotation();  // RAYLIGHT_LOG_MAX_BYTES, else 256 MiB per log
  // On the address peers reach it at, not every interface (DESIGN: loopback unless a host is
  // given), and beyond loopback only with a token and TLS.
  auto security = rpc::LoadSecurity(config.security, "raylight-worker", config.host);
  if (!security.ok()) {
    RL_LOG(ERROR) << security.status().message();
    return 2;
  }
  rpc::SetDefaultTls(security->tls);
  const rpc::ClusterToken& token = security->member;  // a worker's own calls are a member's

  const std::string worker_id = absl::StrCat(config.node_id, "/w", config.slot);
  const std::string instance_id = config.instance_id.empty() ? RandomId("") : config.instance_id;
  auto head_channel = rpc::MakeChannel(config.head_address);
  WorkerIdentity identity{worker_id,        config.node_id,     config.host,
                          config.gpu_index, config.model_roots, config.state_dir};
  CallExecutor executor;
  WorkerRuntime runtime(
      registry, identity,
      [head_channel, token](const std::string& prefix) -> std::unique_ptr<Store> {
        return std::make_unique<PrefixStore>(prefix,
                                             std::make_unique<rpc::GrpcStore>(head_channel, token));
      },
      executor);

  std::unique_ptr<DeviceMemoryProbe> device_memory;
  if (config.gpu_index >= 0) {
    auto probe = DeviceMemoryProbe::Open(config.gpu_index);
    if (probe.ok()) {
      device_memory = *std::move(probe);
    } else {
      RL_LOG(WARNING) << "device memory will not be reported: " << probe.status();
    }
  }

  boost::asio::io_context io;
  int port = 0;
  std::string address;
  auto info = [&]() {
    v1::WorkerInfo out;
    out.set_worker_id(worker_id);
    out.set_node_id(config.node_id);
    out.set_slot(config.slot);
    out.set_kind(config.gpu_index >= 0 ? v1::WORKER_KIND_GPU : v1::WORKER_KIND_CPU);
    out.set_gpu_index(config.gpu_index);
    out.set_address(address);
    out.set_pid(getpid());
    out.set_instance_id(instance_id);
    out.set_alive(true);
    HostedState hosted = runtime.Snapshot();
    if (hosted.has_actor) out.set_actor_id(hosted.actor.actor_id());
    out.set_host_rss_bytes(HostRssBytes());
    if (device_memory != nullptr) {
      if (auto memory = device_memory->Read(); memory.ok()) {
        out.set_device_used_bytes(memory->used_bytes);
        out.set_device_total_bytes(memory->total_bytes);
      }
    }
    for (const std::string& name : runtime.ClassNames()) out.add_actor_classes(name);
    return out;
  };

  int64_t receive_budget = kDefaultReceiveBudgetBytes;
  if (const char* budget = std::getenv("RAYLIGHT_WORKER_RECEIVE_BYTES")) {
    if (!absl::SimpleAtoi(budget, &receive_budget) || receive_budget <= 0) {
      RL_LOG(ERROR) << "RAYLIGHT_WORKER_RECEIVE_BYTES: '" << budget << "' is not a byte count";
      return 2;
    }
  }
  WorkerService service(
      runtime, security->server_auth(), info,
      [&io]() { boost::asio::post(io, [&io]() { io.stop(); }); }, receive_budget);
  grpc::ServerBuilder builder;
  rpc::ConfigureServer(builder);
  builder.AddListeningPort(absl::StrCat(config.host, ":", config.port),
                           rpc::ServerCredentialsFor(security->tls), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    RL_LOG(ERROR) << "cannot serve on port " << config.port;
    return 3;
  }
  address = absl::StrCat(config.host, ":", port);
  RL_LOG(INFO) << "worker " << worker_id << " (instance " << instance_id << ", gpu "
               << config.gpu_index << ") serving at " << address;

  HeadLink link(head_channel, token, info, runtime);
  link.Start();

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&io](const boost::system::error_code& error, int signal_number) {
    if (!error) RL_LOG(INFO) << "signal " << signal_number << ": shutting down";
    io.stop();
  });
  auto guard = boost::asio::make_work_guard(io);
  io.run();

  // Graceful: the running call finishes, queued ones are answered UNAVAILABLE.
  link.Stop();
  executor.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  RL_LOG(INFO) << "worker " << worker_id << " exited";
  return 0;
}

}  // namespace raylight::worker
