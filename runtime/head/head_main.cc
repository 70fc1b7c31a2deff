#include "runtime/head/head_main.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "absl/strings/str_cat.h"
#include "runtime/common/file_util.h"
#include "runtime/common/log.h"
#include "runtime/common/memory_store.h"
#include "runtime/head/head_config.h"
#include "runtime/head/head_manager.h"
#include "runtime/head/head_service.h"
#include "runtime/head/job_manager.h"
#include "runtime/head/job_service.h"
#include "runtime/head/state_db.h"
#include "runtime/head/worker_client.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/kv_service.h"

namespace raylight::head {

int RunHead(int argc, char** argv, const JobKindRegistrar& register_kinds) {
  HeadConfig config;
  CLI::App app("raylight-head: the Raylight cluster's control plane");
  AddHeadFlags(app, config);
  CLI11_PARSE(app, argc, argv);

  // What the head writes (state database, logs, results) is for its own user only.
  umask(0077);
  logging::EnableRotation();  // RAYLIGHT_LOG_MAX_BYTES, else 256 MiB per log
  auto security = rpc::LoadSecurity(config.security, "raylight-head", config.bind_host);
  if (!security.ok()) {
    RL_LOG(ERROR) << security.status().message();
    return 2;
  }
  // The head's calls to workers are a member's: its certificate and the member token.
  rpc::SetDefaultTls(security->tls);
  const rpc::ServerAuth auth = security->server_auth();
  auto db = StateDb::Open(config.state_dir);
  if (!db.ok()) {
    RL_LOG(ERROR) << db.status();
    return 2;
  }
  // The KV store: rendezvous keys in memory, durable ones restored from the database.
  MemoryStore store;
  auto durable = (*db)->LoadKv();
  if (!durable.ok()) {
    RL_LOG(ERROR) << durable.status();
    return 2;
  }
  for (const auto& [key, value] : *durable) (void)store.Set(key, value);

  JobKinds kinds;
  if (register_kinds) register_kinds(config, kinds);

  boost::asio::io_context io;
  WorkerClient workers(io, security->member);
  int port = 0;
  grpc::ServerBuilder builder;
  rpc::ConfigureServer(builder);
  builder.AddListeningPort(absl::StrCat(config.bind_host, ":", config.port),
                           rpc::ServerCredentialsFor(security->tls), &port);
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  // The port is known only after BuildAndStart; the manager needs the address for status only.
  std::unique_ptr<HeadManager> manager;
  std::unique_ptr<HeadService> service;
  rpc::KvStoreService kv(store, auth, db->get());
  // Services must be registered before the server starts, so the manager exists first with a
  // placeholder address that is fixed below.
  std::string address = absl::StrCat(hostname, ":", config.port);
  manager = std::make_unique<HeadManager>(config, io, **db, workers, address);
  service = std::make_unique<HeadService>(io, *manager, auth);
  JobManager jobs(config, io, **db, *manager, security->member, kinds);
  JobService job_service(io, jobs, auth);
  builder.RegisterService(service.get());
  builder.RegisterService(&job_service);
  builder.RegisterService(&kv);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    RL_LOG(ERROR) << "cannot listen on " << config.bind_host << ":" << config.port;
    return 3;
  }
  if (absl::Status status = manager->Start(); !status.ok()) {
    RL_LOG(ERROR) << status;
    return 2;
  }
  if (absl::Status status = jobs.Start(); !status.ok()) {
    RL_LOG(ERROR) << status;
    return 2;
  }
  if (!config.port_file.empty()) {
    // A reader never sees a partial port.
    if (absl::Status written = WriteFileAtomically(config.port_file, absl::StrCat(port, "\n"));
        !written.ok()) {
      RL_LOG(ERROR) << written;
    }
  }
  RL_LOG(INFO) << "raylight-head serving on " << config.bind_host << ":" << port << " (state "
               << config.state_dir << ", auth " << (auth.enabled() ? "on" : "off")
               << (security->separate_member_token ? " with a member token" : "") << ", TLS "
               << (security->tls.enabled() ? "on" : "off") << ")";

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (!error) RL_LOG(INFO) << "signal " << signal_number << ": shutting down";
    jobs.Stop();
    manager->Stop();
    io.stop();
  });
  auto guard = boost::asio::make_work_guard(io);
  io.run();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace raylight::head
