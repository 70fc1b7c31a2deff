// raylight-node: the per-machine agent (see node_agent.h).
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <filesystem>

#include "runtime/common/ids.h"
#include "runtime/common/log.h"
#include "runtime/node/node_agent.h"
#include "runtime/rpc/channels.h"

int main(int argc, char** argv) {
  using namespace raylight;
  node::NodeConfig config;
  CLI::App app("raylight-node: runs this machine's workers for a raylight-head");
  node::AddNodeFlags(app, config);
  CLI11_PARSE(app, argc, argv);
  if (config.node_id.empty()) {
    char hostname[256] = {};
    gethostname(hostname, sizeof(hostname) - 1);
    config.node_id = RandomId(std::string(hostname) + "-").substr(0, std::strlen(hostname) + 9);
  }
  if (config.worker_binary.empty()) {
    config.worker_binary =
        (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "raylight-worker")
            .string();
  }
  umask(0077);                // worker logs and state: this user's only
  logging::EnableRotation();  // RAYLIGHT_LOG_MAX_BYTES, else 256 MiB per log
  // The workers listen on --host: refuse before starting any that would be open.
  auto security = rpc::LoadSecurity(config.security, "raylight-node", config.host);
  if (!security.ok()) {
    RL_LOG(ERROR) << security.status().message();
    return 2;
  }
  rpc::SetDefaultTls(security->tls);
  boost::asio::io_context io;
  node::NodeAgent agent(config, security->member, io);
  if (absl::Status status = agent.Start(); !status.ok()) {
    RL_LOG(ERROR) << status;
    return 2;
  }
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (error) return;
    RL_LOG(INFO) << "signal " << signal_number << ": stopping workers";
    agent.Shutdown(absl::Seconds(10), [&io]() { io.stop(); });
  });
  io.run();
  RL_LOG(INFO) << "raylight-node exited";
  return 0;
}
