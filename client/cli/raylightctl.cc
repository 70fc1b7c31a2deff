// raylightctl: start and stop a Raylight cluster on this machine, join machines to a head, and
// look at it. CLI11 parses the command line (a well-kept header-only library, packaged by Debian,
// with subcommands and environment-variable defaults).
//
//   raylightctl up                       head + node as background daemons; prints the address
//   raylightctl status                   nodes, GPUs, workers, actors, groups
//   raylightctl logs [NAME] [--tail N]   the daemons' and workers' logs
//   raylightctl down                     stops what `up` started
//   raylightctl start --head | --address HOST:PORT;  raylightctl stop
//   raylightctl sample --model M --cond C ...   a sampling job with a progress bar (job_commands.h)
//   raylightctl jobs [list|show|cancel|result]; raylightctl models [list|available|load|unload]
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "client/cli/job_commands.h"
#include "client/cli/table.h"
#include "client/sdk/client.h"
#include "runtime/common/child_process.h"
#include "runtime/common/file_util.h"
#include "runtime/rpc/certificates.h"
#include "runtime/rpc/security.h"

namespace raylight::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string state_dir;
  std::string address;  // RAYLIGHT_ADDRESS
  // The daemons' tokens, TLS directory and --insecure (`token_file` / `token` are also what this
  // command's own calls carry).
  rpc::SecurityFlags security;
  std::string tls_ca;  // RAYLIGHT_TLS_CA: the CA this command's calls verify the head with
  bool tls = false;    // `up`: make (or reuse) the cluster's certificates and serve over TLS
  int port = 6380;
  std::string host = "127.0.0.1";
  int num_cpu_workers = -1;
  int tail = 50;
  std::string log_name;
  bool head = false;
  std::vector<std::string> model_roots;
};

std::string DefaultStateDir() {
  const char* home = std::getenv("HOME");
  return absl::StrCat(home ? home : "/tmp", "/.raylight");
}

fs::path BinDir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

std::string ReadFirstLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The tokens and certificates `up` made for the local cluster, beside its state.
fs::path StateTokenFile(const Options& options) { return fs::path(options.state_dir) / "token"; }
fs::path StateMemberTokenFile(const Options& options) {
  return fs::path(options.state_dir) / "member_token";
}
fs::path StateTlsDir(const Options& options) { return fs::path(options.state_dir) / "tls"; }

// --token-file, else --token / RAYLIGHT_TOKEN, else the local cluster's token file.
std::string ResolveToken(const Options& options) {
  if (!options.security.token_file.empty()) return ReadFirstLine(options.security.token_file);
  if (!options.security.token.empty()) return options.security.token;
  if (fs::exists(StateTokenFile(options))) return ReadFirstLine(StateTokenFile(options));
  return "";
}

// A secret at `path` (kept if there): 32 random bytes from the kernel, in hex, 0600.
absl::Status EnsureSecret(const fs::path& path) {
  if (fs::exists(path)) return absl::OkStatus();
  std::ifstream random("/dev/urandom", std::ios::binary);
  unsigned char bytes[32];
  if (!random.read(reinterpret_cast<char*>(bytes), sizeof(bytes))) {
    return absl::InternalError("cannot read /dev/urandom for a token");
  }
  std::string hex;
  for (unsigned char byte : bytes) absl::StrAppend(&hex, absl::Hex(byte, absl::kZeroPad2));
  const mode_t previous = umask(0077);
  absl::Status written = WriteFileAtomically(path.string(), hex + "\n");
  umask(previous);
  return written;
}

// A cluster started here without tokens gets two (auth.h): the cluster token in <state>/token,
// which clients use, and the member token in <state>/member_token, which only the daemons read.
absl::Status EnsureTokens(Options& options) {
  rpc::SecurityFlags& security = options.security;
  if (security.token_file.empty() && security.token.empty()) {
    if (auto status = EnsureSecret(StateTokenFile(options)); !status.ok()) return status;
    security.token_file = StateTokenFile(options).string();
  }
  if (security.member_token_file.empty() && security.member_token.empty()) {
    if (auto status = EnsureSecret(StateMemberTokenFile(options)); !status.ok()) return status;
    security.member_token_file = StateMemberTokenFile(options).string();
  }
  return absl::OkStatus();
}

// With --tls, or a --host beyond loopback (unless --insecure), the cluster serves over mutual
// TLS: the certificates in --tls-dir, else <state>/tls, made on first use (certificates.h).
absl::Status EnsureTls(Options& options) {
  rpc::SecurityFlags& security = options.security;
  const bool wanted = options.tls || !security.tls_dir.empty() ||
                      (!rpc::IsLoopbackHost(options.host) && !security.insecure);
  if (!wanted) return absl::OkStatus();
  if (security.tls_dir.empty()) {
    const fs::path dir = StateTlsDir(options);
    if (!fs::exists(dir / rpc::kCaCertFile)) {
      if (auto status = rpc::MakeClusterCertificates(dir.string(), {options.host}); !status.ok()) {
        return status;
      }
      std::cout << "made the cluster's CA and member certificate in " << dir.string() << "\n";
    }
    security.tls_dir = dir.string();
  }
  return absl::OkStatus();
}

// The daemon flags for the security settings; inline tokens go through the environment.
void AddSecurityArgs(const Options& options, std::vector<std::string>& argv) {
  std::vector<std::pair<std::string, std::string>> env;
  rpc::PassSecurityFlags(options.security, argv, env);
  for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
}

// The address to talk to: --address / RAYLIGHT_ADDRESS, else the local cluster's.
std::string ResolveAddress(const Options& options) {
  if (!options.address.empty()) return options.address;
  return ReadFirstLine(fs::path(options.state_dir) / "address");
}

// Whether `pid` is a running raylight-<name>: not gone, not a zombie waiting for its reaper (a
// daemon killed with -9 is one until init reaps it), not another program that got the pid.
bool DaemonRunning(int pid, const std::string& name) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  const std::string proc = absl::StrCat("/proc/", pid);
  const std::string stat = ReadFirstLine(proc + "/stat");
  const size_t name_end = stat.rfind(')');
  if (name_end != std::string::npos && name_end + 2 < stat.size() && stat[name_end + 2] == 'Z') {
    return false;
  }
  std::ifstream cmdline(proc + "/cmdline");
  std::string program;
  std::getline(cmdline, program, '\0');
  return fs::path(program).filename() == "raylight-" + name;
}

// ALREADY_EXISTS when this state dir's raylight-<name> runs.
absl::Status CheckNotRunning(const std::string& name, const Options& options) {
  const fs::path pid_file = fs::path(options.state_dir) / (name + ".pid");
  if (!fs::exists(pid_file)) return absl::OkStatus();
  const int pid = std::atoi(ReadFirstLine(pid_file).c_str());
  if (!DaemonRunning(pid, name)) return absl::OkStatus();
  return absl::AlreadyExistsError(
      absl::StrCat(name, " is already running (pid ", pid, "); `raylightctl down` stops it"));
}

absl::Status StartDaemon(const std::string& name, std::vector<std::string> argv,
                         const Options& options) {
  if (auto status = CheckNotRunning(name, options); !status.ok()) return status;
  const fs::path pid_file = fs::path(options.state_dir) / (name + ".pid");
  SpawnOptions spawn;
  spawn.new_session = true;  // outlives this shell
  spawn.log_path = (fs::path(options.state_dir) / "logs" / (name + ".log")).string();
  auto child = ChildProcess::Spawn(argv, spawn);
  if (!child.ok()) return child.status();
  child->Release();
  std::ofstream(pid_file) << child->pid() << "\n";
  return absl::OkStatus();
}

absl::Status StopDaemon(const std::string& name, const Options& options) {
  const fs::path pid_file = fs::path(options.state_dir) / (name + ".pid");
  if (!fs::exists(pid_file)) return absl::NotFoundError(absl::StrCat(name, " is not running"));
  const int pid = std::atoi(ReadFirstLine(pid_file).c_str());
  fs::remove(pid_file);
  if (pid <= 0 || kill(pid, SIGTERM) != 0) {
    return absl::NotFoundError(absl::StrCat(name, " (pid ", pid, ") was not running"));
  }
  // Waits for it to go (the node stops its workers first), then insists.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (DaemonRunning(pid, name) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  if (DaemonRunning(pid, name)) kill(pid, SIGKILL);
  return absl::OkStatus();
}

absl::Status StartHead(const Options& options) {
  if (auto status = CheckNotRunning("head", options); !status.ok()) return status;
  const fs::path port_file = fs::path(options.state_dir) / "head.port";
  fs::remove(port_file);
  std::vector<std::string> argv = {(BinDir() / "raylight-head").string(),
                                   absl::StrCat("--port=", options.port),
                                   "--port-file=" + port_file.string(),
                                   "--state-dir=" + options.state_dir, "--host=" + options.host};
  AddSecurityArgs(options, argv);
  for (const std::string& root : options.model_roots) {
    argv.push_back("--model-root=" + fs::absolute(root).string());
  }
  if (auto status = StartDaemon("head", argv, options); !status.ok()) return status;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  std::ofstream(fs::path(options.state_dir) / "address") << address << "\n";
  return absl::OkStatus();
}

absl::Status StartNode(const Options& options, const std::string& address) {
  std::vector<std::string> argv = {(BinDir() / "raylight-node").string(), "--address=" + address,
                                   "--host=" + options.host, "--state-dir=" + options.state_dir,
                                   absl::StrCat("--num-cpu-workers=", options.num_cpu_workers)};
  AddSecurityArgs(options, argv);
  // The workers check every model file a call names against these themselves.
  for (const std::string& root : options.model_roots) {
    argv.push_back("--model-root=" + fs::absolute(root).string());
  }
  return StartDaemon("node", argv, options);
}

client::ClientOptions ClientOptionsOf(const Options& options) {
  client::ClientOptions client_options;
  client_options.address = ResolveAddress(options);
  client_options.token = ResolveToken(options);
  // The local cluster's CA when talking to the local cluster.
  client_options.tls_ca = options.tls_ca;
  const fs::path local_ca = StateTlsDir(options) / rpc::kCaCertFile;
  if (client_options.tls_ca.empty() && fs::exists(local_ca) &&
      (options.address.empty() ||
       options.address == ReadFirstLine(fs::path(options.state_dir) / "address"))) {
    client_options.tls_ca = local_ca.string();
  }
  return client_options;
}

absl::StatusOr<std::unique_ptr<client::Client>> Connect(const Options& options) {
  return client::Client::Connect(ClientOptionsOf(options));
}

int Fail(const absl::Status& status) {
  std::cerr << "raylightctl: " << status.message() << "\n";
  return 1;
}

int Up(Options& options) {
  fs::create_directories(fs::path(options.state_dir) / "logs");
  if (auto status = EnsureTokens(options); !status.ok()) return Fail(status);
  if (auto status = EnsureTls(options); !status.ok()) return Fail(status);
  // `up` brings up what is not running: after a crash of either daemon it starts that one
  // again (a node re-registers with a restarted head by itself).
  auto start = [](const char* name, const absl::Status& status) {
    if (status.code() == absl::StatusCode::kAlreadyExists) {
      std::cout << status.message() << "\n";
      return absl::OkStatus();
    }
    if (status.ok()) std::cout << "started the " << name << "\n";
    return status;
  };
  if (auto status = start("head", StartHead(options)); !status.ok()) return Fail(status);
  const std::string address = absl::StrCat(options.host, ":", options.port);
  if (auto status = start("node", StartNode(options, address)); !status.ok()) return Fail(status);
  auto client = Connect(options);
  if (!client.ok()) return Fail(client.status());
  // First the node (it says how many workers it runs), then all of its workers.
  auto state = (*client)->WaitCluster(1, 0, absl::Seconds(60));
  if (state.ok() && state->nodes_size() > 0) {
    const auto& node = state->nodes(0);
    state = (*client)->WaitCluster(1, node.gpus_size() + node.cpu_slots(), absl::Seconds(60));
  }
  if (!state.ok()) {
    return Fail(absl::Status(state.status().code(),
                             absl::StrCat("cluster did not come up: ", state.status().message(),
                                          " (see ", options.state_dir, "/logs)")));
  }
  std::cout << "Raylight is up at " << address << " (" << state->workers_size()
            << " workers; state and logs in " << options.state_dir << ")\n"
            << "  export RAYLIGHT_ADDRESS=" << address << "\n";
  return 0;
}

int Down(const Options& options) {
  bool any = false;
  for (const char* name : {"node", "head"}) {
    absl::Status status = StopDaemon(name, options);
    if (status.ok()) {
      std::cout << "stopped " << name << "\n";
      any = true;
    }
  }
  if (!any) std::cout << "nothing was running from " << options.state_dir << "\n";
  return 0;
}

int Status(const Options& options) {
  auto client = Connect(options);
  if (!client.ok()) return Fail(client.status());
  auto state = (*client)->ClusterState();
  if (!state.ok()) return Fail(state.status());
  std::cout << "head " << state->head_address() << "\n\nNODES\n";
  Table nodes({"NODE", "HOST", "STATE", "GPUS", "CPU SLOTS"});
  for (const auto& node : state->nodes()) {
    std::string gpus;
    for (const auto& gpu : node.gpus()) {
      gpus += absl::StrCat(gpus.empty() ? "" : ", ", gpu.index(), ": ", gpu.name(), " ",
                           HumanBytes(gpu.total_memory_bytes()));
    }
    nodes.Add({node.node_id(), node.host(), node.alive() ? "ALIVE" : "DEAD " + node.death_reason(),
               gpus.empty() ? "-" : gpus, std::to_string(node.cpu_slots())});
  }
  std::cout << nodes.Render() << "\nWORKERS\n";
  Table workers({"WORKER", "KIND", "ADDRESS", "PID", "STATE", "ACTOR", "HOST RSS", "GPU MEM"});
  for (const auto& w : state->workers()) {
    workers.Add({w.worker_id(),
                 w.kind() == v1::WORKER_KIND_GPU ? absl::StrCat("gpu ", w.gpu_index()) : "cpu",
                 w.address(), std::to_string(w.pid()), w.alive() ? "ALIVE" : "DEAD",
                 w.actor_id().empty() ? "-" : w.actor_id(), HumanBytes(w.host_rss_bytes()),
                 w.device_total_bytes() > 0 ? absl::StrCat(HumanBytes(w.device_used_bytes()), " / ",
                                                           HumanBytes(w.device_total_bytes()))
                                            : "-"});
  }
  std::cout << workers.Render() << "\nACTORS\n";
  Table actors({"ACTOR", "NAME", "CLASS", "STATE", "RESTARTS", "WORKER", "REASON"});
  for (const auto& a : state->actors()) {
    actors.Add({a.spec().actor_id(), a.spec().name().empty() ? "-" : a.spec().name(),
                a.spec().class_name(), v1::ActorState_Name(a.state()),
                std::to_string(a.num_restarts()), a.worker_id().empty() ? "-" : a.worker_id(),
                a.death_reason().empty() ? "-" : a.death_reason()});
  }
  std::cout << actors.Render() << "\nGROUPS\n";
  Table groups({"GROUP", "NAME", "STATE", "RANKS", "BACKEND", "INCARNATION", "REASON"});
  for (const auto& g : state->groups()) {
    groups.Add({g.group_id(), g.spec().name(), v1::GroupState_Name(g.state()),
                std::to_string(g.members_size()), v1::CollectiveBackend_Name(g.spec().backend()),
                std::to_string(g.incarnation()),
                g.dissolved_reason().empty() ? "-" : g.dissolved_reason()});
  }
  std::cout << groups.Render();
  return 0;
}

int Logs(const Options& options) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(options.state_dir)) {
    if (entry.path().extension() != ".log") continue;
    if (!options.log_name.empty() && entry.path().stem() != options.log_name) continue;
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    return Fail(absl::NotFoundError(
        absl::StrCat("no logs", options.log_name.empty() ? "" : " named " + options.log_name,
                     " under ", options.state_dir)));
  }
  for (const fs::path& file : files) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::cout << "==> " << file.string() << " <==\n";
    size_t start =
        lines.size() > static_cast<size_t>(options.tail) ? lines.size() - options.tail : 0;
    for (size_t i = start; i < lines.size(); ++i) std::cout << lines[i] << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace raylight::cli

int main(int argc, char** argv) {
  using namespace raylight::cli;
  Options options;
  CLI::App app("raylightctl: run and inspect a Raylight cluster");
  app.require_subcommand(1);
  app.add_option("--state-dir", options.state_dir, "state, pid files and logs")
      ->envname("RAYLIGHT_STATE_DIR");
  app.add_option("--address", options.address, "the head (host:port)")->envname("RAYLIGHT_ADDRESS");
  app.add_option("--token-file", options.security.token_file, "file holding the cluster token");
  app.add_option("--token", options.security.token, "cluster token")->envname("RAYLIGHT_TOKEN");
  app.add_option("--tls-ca", options.tls_ca,
                 "the cluster's CA certificate (PEM), to reach a head that serves TLS "
                 "(default: the local cluster's)")
      ->envname("RAYLIGHT_TLS_CA");

  auto* up = app.add_subcommand("up", "start a head and a node on this machine, wait until ready");
  up->add_option("--port", options.port, "head port")->capture_default_str();
  up->add_option("--host", options.host, "address workers and clients reach this machine at")
      ->capture_default_str();
  up->add_option("--num-cpu-workers", options.num_cpu_workers,
                 "CPU workers (default: 2 without GPUs, else 0)");
  up->add_flag("--insecure", options.security.insecure,
               "with a non-loopback --host: run without TLS (trusted networks only)");
  up->add_flag("--tls", options.tls,
               "serve over mutual TLS with the cluster's own CA (made in <state>/tls on first "
               "use; the default with a non-loopback --host)");
  up->add_option("--model-root", options.model_roots,
                 "a directory jobs may read models from (repeatable)")
      ->envname("RAYLIGHT_MODEL_ROOTS")
      ->delimiter(':');
  auto* down = app.add_subcommand("down", "stop the head and node that `up` started");
  auto* start = app.add_subcommand("start", "start a head (--head) or a node joining --address");
  start->add_flag("--head", options.head, "start a head daemon");
  start->add_option("--address", options.address, "the head a node joins (host:port)")
      ->envname("RAYLIGHT_ADDRESS");
  start->add_option("--port", options.port, "head port")->capture_default_str();
  start->add_option("--host", options.host, "this machine's reachable address")
      ->capture_default_str();
  start->add_option("--num-cpu-workers", options.num_cpu_workers, "CPU workers of the node");
  start->add_flag("--insecure", options.security.insecure,
                  "with a non-loopback --host: run without TLS (trusted networks only)");
  start->add_flag("--tls", options.tls, "a head: serve over mutual TLS (as `up --tls`)");
  start->add_option("--tls-dir", options.security.tls_dir,
                    "the cluster's ca.pem, cert.pem and key.pem (copied from the head's "
                    "<state>/tls to join a TLS cluster)");
  start->add_option("--member-token-file", options.security.member_token_file,
                    "the member token (copied from the head's <state>/member_token)");
  start
      ->add_option("--model-root", options.model_roots,
                   "a directory jobs (--head) or workers (a node) may read models from")
      ->envname("RAYLIGHT_MODEL_ROOTS")
      ->delimiter(':');
  auto* stop = app.add_subcommand("stop", "stop the daemons started on this machine");
  auto* status = app.add_subcommand("status", "nodes, GPUs, workers, actors and groups");
  auto* logs = app.add_subcommand("logs", "print the daemons' and workers' logs");
  logs->add_option("name", options.log_name, "head, node, worker-0, ... (default: all)");
  logs->add_option("--tail", options.tail, "lines per file")->capture_default_str();
  SampleFlags sample_flags, load_flags;
  JobsFlags jobs_flags;
  std::string unload_path;
  auto* sample = AddSampleCommand(app, sample_flags);
  auto* jobs = AddJobsCommand(app, jobs_flags);
  auto* models = AddModelsCommand(app, load_flags, unload_path);
  CLI11_PARSE(app, argc, argv);
  if (options.state_dir.empty()) options.state_dir = DefaultStateDir();
  // State, pid files, logs and the token are this user's only.
  std::filesystem::create_directories(std::filesystem::path(options.state_dir) / "logs");
  std::filesystem::permissions(options.state_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);

  if (*up) return Up(options);
  if (*down || *stop) return Down(options);
  if (*status) return Status(options);
  if (*logs) return Logs(options);
  if (*sample) return RunSample(ClientOptionsOf(options), sample_flags);
  if (*jobs) return RunJobs(ClientOptionsOf(options), *jobs, jobs_flags);
  if (*models) return RunModels(ClientOptionsOf(options), *models, load_flags, unload_path);
  if (*start) {
    if (options.head) {
      if (auto s = EnsureTokens(options); !s.ok()) return Fail(s);
      if (auto s = EnsureTls(options); !s.ok()) return Fail(s);
      if (auto s = StartHead(options); !s.ok()) return Fail(s);
      std::cout << "head started on " << options.host << ":" << options.port << " (logs in "
                << options.state_dir << "/logs; cluster token in " << options.security.token_file
                << ", member token in " << options.security.member_token_file
                << (options.security.tls_dir.empty() ? "" : ", certificates in ")
                << options.security.tls_dir << ")\n";
      return 0;
    }
    if (options.address.empty())
      return Fail(absl::InvalidArgumentError("start: --head or --address HOST:PORT"));
    if (auto s = StartNode(options, options.address); !s.ok()) return Fail(s);
    std::cout << "node started, joining " << options.address << "\n";
    return 0;
  }
  return 0;
}
