// Secure by default (issue #23, items 1 to 3): the daemons listen on loopback unless given a
// host, refuse a host beyond loopback without a cluster token and TLS (unless --insecure), refuse
// a token file others can read, and keep their state files private; `raylightctl up` makes
// tokens of its own (0600) that every service then requires, one for clients and one for
// members; with TLS, members also present the cluster's certificate. Real binaries on real ports.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "raylight/v1/head.grpc.pb.h"
#include "raylight/v1/worker.grpc.pb.h"
#include "runtime/common/child_process.h"
#include "runtime/rpc/certificates.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_store.h"
#include "tests/util/cluster.h"
#include "tests/util/read_file.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight {
namespace {

namespace fs = std::filesystem;
const std::string kBin = RAYLIGHT_BIN_DIR;

// The local addresses (hex, as /proc/net/tcp{,6} write them) of the listening sockets on `port`.
std::set<std::string> ListeningAddresses(int port) {
  std::set<std::string> addresses;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 4 || fields[3] != "0A") continue;  // 0A: LISTEN
      const std::vector<std::string> local = absl::StrSplit(fields[1], ':');
      int local_port = 0;
      if (local.size() == 2 && absl::SimpleHexAtoi(local[1], &local_port) && local_port == port) {
        addresses.insert(local[0]);
      }
    }
  }
  return addresses;
}

// Whether every address is 127.0.0.1 as /proc/net/tcp{,6} write it: IPv4, or IPv4-mapped IPv6
// (gRPC listens on an IPv6 socket where it can).
bool AllLoopback(const std::set<std::string>& addresses) {
  if (addresses.empty()) return false;
  for (const std::string& address : addresses) {
    if (address != "0100007F" && address != "0000000000000000FFFF00000100007F") return false;
  }
  return true;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

int PortOf(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) << address;
  return port;
}

mode_t ModeOf(const fs::path& path) {
  struct stat info {};
  EXPECT_EQ(stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

// Starts a daemon that must refuse to run: its exit code and log.
std::pair<int, std::string> RunRefused(const std::vector<std::string>& argv,
                                       const std::string& log) {
  SpawnOptions spawn;
  spawn.log_path = log;
  auto child = ChildProcess::Spawn(argv, spawn);
  EXPECT_TRUE(child.ok()) << child.status();
  if (!child.ok()) return {-1, ""};
  auto code = child->Wait(std::chrono::seconds(20));
  EXPECT_TRUE(code.ok()) << code.status();
  return {code.ok() ? *code : -1, testing_util::ReadFileOrEmpty(log)};
}

TEST(SecurityTest, DefaultServicesListenOnLoopbackOnly) {
  testing_util::TempDir dir("security-loopback");
  testing_util::ClusterOptions options;
  options.nodes = 1;
  options.cpu_workers_per_node = 2;
  options.token = "loopback-token";
  testing_util::TestCluster cluster(kBin, dir.path(), options);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.Logs();
  auto state = cluster.Connect()->ClusterState();
  ASSERT_TRUE(state.ok()) << state.status();
  std::vector<int> ports = {PortOf(cluster.address())};
  for (const auto& worker : state->workers()) ports.push_back(PortOf(worker.address()));
  ASSERT_EQ(ports.size(), 3u);
  for (int port : ports) {
    const std::set<std::string> listening = ListeningAddresses(port);
    EXPECT_TRUE(AllLoopback(listening)) << "port " << port << ": " << absl::StrJoin(listening, ",");
  }
  // What the head wrote is its user's only.
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    if (entry.path().filename() == "logs") continue;  // the test's own, opened by this process
    if (entry.is_regular_file()) {
      EXPECT_EQ(ModeOf(entry.path()) & 077, 0u) << entry.path() << " is readable by others";
    }
  }
}

TEST(SecurityTest, AnOpenAddressNeedsATokenAndTlsOrInsecure) {
  testing_util::TempDir dir("security-open");
  const std::string port_file = dir.path() + "/head.port";
  std::vector<std::string> head = {kBin + "/raylight-head", "--host=0.0.0.0", "--port=0",
                                   "--port-file=" + port_file, "--state-dir=" + dir.path()};
  auto [code, log] = RunRefused(head, dir.path() + "/head.log");
  EXPECT_EQ(code, 2) << log;
  EXPECT_NE(log.find("--insecure"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(port_file));
  // A token alone is not enough: it would travel in clear.
  const std::string token = dir.path() + "/token";
  std::ofstream(token) << "open-secret\n";
  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write);
  std::vector<std::string> with_token = head;
  with_token.push_back("--token-file=" + token);
  auto [token_code, token_log] = RunRefused(with_token, dir.path() + "/head-token.log");
  EXPECT_EQ(token_code, 2) << token_log;
  EXPECT_NE(token_log.find("without TLS"), std::string::npos) << token_log;
  EXPECT_FALSE(fs::exists(port_file));
  // A token and TLS: it serves.
  ASSERT_TRUE(rpc::MakeClusterCertificates(dir.path() + "/tls").ok());
  with_token.push_back("--tls-dir=" + dir.path() + "/tls");
  SpawnOptions secured;
  secured.log_path = dir.path() + "/head-tls.log";
  auto serving = ChildProcess::Spawn(with_token, secured);
  ASSERT_TRUE(serving.ok());
  EXPECT_TRUE(testing_util::WaitForFile(port_file, absl::Seconds(30)).ok())
      << testing_util::ReadFileOrEmpty(secured.log_path);
  serving->Kill();
  fs::remove(port_file);
  // A node whose workers would listen on a routable address: refused before any worker starts.
  auto [node_code, node_log] =
      RunRefused({kBin + "/raylight-node", "--address=127.0.0.1:1", "--host=10.255.255.1",
                  "--no-gpu", "--state-dir=" + dir.path() + "/node"},
                 dir.path() + "/node.log");
  EXPECT_EQ(node_code, 2) << node_log;
  EXPECT_NE(node_log.find("refusing to listen on 10.255.255.1"), std::string::npos) << node_log;
  // With --insecure the operator takes the risk: it serves.
  head.push_back("--insecure");
  SpawnOptions spawn;
  spawn.log_path = dir.path() + "/head-insecure.log";
  auto started = ChildProcess::Spawn(head, spawn);
  ASSERT_TRUE(started.ok());
  EXPECT_TRUE(testing_util::WaitForFile(port_file, absl::Seconds(30)).ok())
      << testing_util::ReadFileOrEmpty(spawn.log_path);
  started->Kill();
}

TEST(SecurityTest, ATokenFileOthersCanReadIsRefused) {
  testing_util::TempDir dir("security-token-mode");
  const std::string token = dir.path() + "/token";
  std::ofstream(token) << "secret\n";
  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                             fs::perms::others_read);
  auto [code, log] = RunRefused(
      {kBin + "/raylight-head", "--port=0", "--state-dir=" + dir.path(), "--token-file=" + token},
      dir.path() + "/head.log");
  EXPECT_EQ(code, 2) << log;
  EXPECT_NE(log.find("chmod 600"), std::string::npos) << log;
}

TEST(SecurityTest, UpMakesAPrivateTokenThatEveryCallNeeds) {
  testing_util::TempDir dir("security-up");
  const std::string state = dir.path() + "/state";
  const int port = FreePort();
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {kBin + "/raylightctl", "--state-dir=" + state});
    return testing_util::RunToCompletion(args, dir.path() + "/ctl.log", std::chrono::seconds(120));
  };
  ASSERT_TRUE(ctl({"up", absl::StrCat("--port=", port), "--num-cpu-workers=1"}).ok())
      << testing_util::ReadFileOrEmpty(dir.path() + "/ctl.log");
  EXPECT_EQ(ModeOf(state), 0700u);
  ASSERT_TRUE(fs::exists(state + "/token"));
  EXPECT_EQ(ModeOf(state + "/token"), 0600u);
  EXPECT_EQ(testing_util::ReadFileOrEmpty(state + "/token").size(), 65u);  // 32 bytes in hex
  EXPECT_TRUE(AllLoopback(ListeningAddresses(port)));
  // raylightctl finds the token itself; a client without it is refused.
  EXPECT_TRUE(ctl({"status"}).ok()) << testing_util::ReadFileOrEmpty(dir.path() + "/ctl.log");
  client::ClientOptions anonymous;
  anonymous.address = absl::StrCat("127.0.0.1:", port);
  auto client = client::Client::Connect(anonymous);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->ClusterState().status().code(), absl::StatusCode::kUnauthenticated);
  // The members' token is another, and the client's does not open member RPCs.
  EXPECT_EQ(ModeOf(state + "/member_token"), 0600u);
  EXPECT_NE(testing_util::ReadFileOrEmpty(state + "/member_token"),
            testing_util::ReadFileOrEmpty(state + "/token"));
  std::string token = testing_util::ReadFileOrEmpty(state + "/token");
  token.pop_back();
  rpc::GrpcStore kv(rpc::MakeChannel(anonymous.address), rpc::ClusterToken(token));
  EXPECT_EQ(kv.Set("k", "v").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ctl({"down"}).ok());
}

// `raylightctl up --tls` makes the cluster's CA and certificate in <state>/tls on first use and
// serves over mutual TLS; raylightctl finds the CA itself, a plaintext client gets nowhere.
TEST(SecurityTest, UpWithTlsServesOnlyOverTls) {
  testing_util::TempDir dir("security-up-tls");
  const std::string state = dir.path() + "/state";
  const int port = FreePort();
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {kBin + "/raylightctl", "--state-dir=" + state});
    return testing_util::RunToCompletion(args, dir.path() + "/ctl.log", std::chrono::seconds(120));
  };
  ASSERT_TRUE(ctl({"up", absl::StrCat("--port=", port), "--num-cpu-workers=1", "--tls"}).ok())
      << testing_util::ReadFileOrEmpty(dir.path() + "/ctl.log");
  EXPECT_EQ(ModeOf(state + "/tls/key.pem"), 0600u);
  EXPECT_TRUE(ctl({"status"}).ok()) << testing_util::ReadFileOrEmpty(dir.path() + "/ctl.log");
  std::string token = testing_util::ReadFileOrEmpty(state + "/token");
  token.pop_back();
  client::ClientOptions options;
  options.address = absl::StrCat("127.0.0.1:", port);
  options.token = token;
  options.rpc_timeout = absl::Seconds(5);
  EXPECT_EQ((*client::Client::Connect(options))->ClusterState().status().code(),
            absl::StatusCode::kUnavailable);
  options.tls_ca = state + "/tls/ca.pem";
  auto cluster_state = (*client::Client::Connect(options))->ClusterState();
  ASSERT_TRUE(cluster_state.ok()) << cluster_state.status();
  EXPECT_EQ(cluster_state->workers_size(), 1);
  EXPECT_TRUE(ctl({"down"}).ok());
}

// A gRPC status code of a call made with `token` attached (auth.h's credentials).
template <typename Call>
grpc::StatusCode CodeOf(const std::string& token, Call call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  rpc::ClusterToken(token).Attach(context);
  return call(context).error_code();
}

// Issue #23, item 2: one token let a client do everything the head can. Clients and members now
// hold different tokens: the client's runs jobs, actors and actor calls, but cannot drive a
// worker (start or stop actors, join groups, shut it down), pose as a node, or touch the KV
// store's rendezvous; the member token can.
TEST(SecurityTest, AClientTokenCannotDriveWorkersOrPoseAsANode) {
  testing_util::TempDir dir("security-roles");
  testing_util::ClusterOptions options;
  options.nodes = 1;
  options.cpu_workers_per_node = 1;
  options.token = "client-secret";
  options.member_token = "member-secret";
  testing_util::TestCluster cluster(kBin, dir.path(), options);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.Logs();
  auto state = cluster.Connect()->ClusterState();
  ASSERT_TRUE(state.ok()) << state.status();
  auto worker = v1::Worker::NewStub(rpc::MakeChannel(state->workers(0).address()));
  auto head = v1::Head::NewStub(rpc::MakeChannel(cluster.address()));
  const auto start_actor = [&](grpc::ClientContext& c) {
    v1::StartActorResponse response;
    return worker->StartActor(&c, v1::StartActorRequest(), &response);
  };
  const auto shutdown = [&](grpc::ClientContext& c) {
    v1::ShutdownResponse response;
    return worker->Shutdown(&c, v1::ShutdownRequest(), &response);
  };
  const auto join = [&](grpc::ClientContext& c) {
    v1::JoinGroupResponse response;
    return worker->JoinGroup(&c, v1::JoinGroupRequest(), &response);
  };
  const auto register_node = [&](grpc::ClientContext& c) {
    v1::RegisterNodeResponse response;
    return head->RegisterNode(&c, v1::RegisterNodeRequest(), &response);
  };
  const auto stats = [&](grpc::ClientContext& c) {
    v1::WorkerInfo info;
    return worker->GetStats(&c, v1::GetStatsRequest(), &info);
  };
  for (const auto& [name, call] :
       std::vector<std::pair<std::string, std::function<grpc::Status(grpc::ClientContext&)>>>{
           {"StartActor", start_actor},
           {"Shutdown", shutdown},
           {"JoinGroup", join},
           {"RegisterNode", register_node}}) {
    EXPECT_EQ(CodeOf("client-secret", call), grpc::StatusCode::PERMISSION_DENIED) << name;
    EXPECT_EQ(CodeOf("wrong", call), grpc::StatusCode::UNAUTHENTICATED) << name;
  }
  rpc::GrpcStore client_kv(rpc::MakeChannel(cluster.address()), rpc::ClusterToken("client-secret"));
  EXPECT_EQ(client_kv.Set("k", "v").code(), absl::StatusCode::kPermissionDenied);
  // What clients may do: read a worker's stats, ask the head, call actors (the SDK does).
  EXPECT_EQ(CodeOf("client-secret", stats), grpc::StatusCode::OK);
  EXPECT_TRUE(cluster.Connect()->ClusterState().ok());
  // The member token is a member's: the KV store and member RPCs accept it.
  rpc::GrpcStore member_kv(rpc::MakeChannel(cluster.address()), rpc::ClusterToken("member-secret"));
  EXPECT_TRUE(member_kv.Set("k", "v").ok());
  EXPECT_EQ(CodeOf("member-secret", stats), grpc::StatusCode::OK);
  // Nothing the refused calls asked for happened: the worker still serves.
  EXPECT_TRUE(cluster.Connect()->WaitCluster(1, 1, absl::Seconds(10)).ok());
}

// Issue #23: gRPC over TLS. Members present the cluster's certificate (mutual TLS); clients
// verify the head with the cluster's CA. A plaintext client, or one that trusts another CA, gets
// nowhere; a member RPC needs the member certificate as well as the member token.
TEST(SecurityTest, ATlsClusterServesOnlyOverTlsAndMembersNeedTheCertificate) {
  testing_util::TempDir dir("security-tls");
  const std::string tls_dir = dir.path() + "/tls";
  ASSERT_TRUE(rpc::MakeClusterCertificates(tls_dir).ok());
  EXPECT_EQ(ModeOf(tls_dir), 0700u);
  EXPECT_EQ(ModeOf(tls_dir + "/key.pem"), 0600u);
  EXPECT_EQ(ModeOf(tls_dir + "/ca.key"), 0600u);
  EXPECT_EQ(rpc::MakeClusterCertificates(tls_dir).code(), absl::StatusCode::kAlreadyExists);
  testing_util::ClusterOptions options;
  options.nodes = 1;
  options.cpu_workers_per_node = 2;
  options.token = "client-secret";
  options.member_token = "member-secret";
  options.tls_dir = tls_dir;
  testing_util::TestCluster cluster(kBin, dir.path() + "/state", options);
  fs::create_directories(dir.path() + "/state/logs");
  ASSERT_TRUE(cluster.Start().ok()) << cluster.Logs();
  auto state = cluster.Connect()->ClusterState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->workers_size(), 2);

  client::ClientOptions plaintext;
  plaintext.address = cluster.address();
  plaintext.token = "client-secret";
  plaintext.rpc_timeout = absl::Seconds(5);
  EXPECT_EQ((*client::Client::Connect(plaintext))->ClusterState().status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(rpc::MakeClusterCertificates(dir.path() + "/other").ok());
  client::ClientOptions stranger = plaintext;
  stranger.tls_ca = dir.path() + "/other/ca.pem";
  EXPECT_EQ((*client::Client::Connect(stranger))->ClusterState().status().code(),
            absl::StatusCode::kUnavailable);

  auto client_tls = rpc::LoadClientTls(tls_dir + "/ca.pem");
  auto member_tls = rpc::LoadMemberTls(tls_dir);
  ASSERT_TRUE(client_tls.ok() && member_tls.ok());
  // The member token over a client's connection (no certificate): refused.
  rpc::GrpcStore without_certificate(rpc::MakeChannel(cluster.address(), *client_tls, true),
                                     rpc::ClusterToken("member-secret"));
  const absl::Status refused = without_certificate.Set("k", "v");
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_NE(refused.message().find("member certificate"), std::string::npos) << refused;
  // With the member certificate and token: a member.
  rpc::GrpcStore member(rpc::MakeChannel(cluster.address(), *member_tls, true),
                        rpc::ClusterToken("member-secret"));
  EXPECT_TRUE(member.Set("k", "v").ok());
  // The members themselves talk over TLS: a group forms only when the head's calls start and
  // join both workers and the two rendezvous through the head's KV store.
  v1::GroupSpec group;
  group.set_name("tls-group");
  group.set_size(2);
  group.set_actor_class("TestActor");
  group.mutable_resources()->set_cpu(1);
  group.set_backend(v1::GLOO);
  auto formed = cluster.Connect()->CreateGroup(group, absl::Seconds(60));
  ASSERT_TRUE(formed.ok()) << formed.status() << cluster.Logs();
}

// Issue #23, item 11: after a head crash `raylightctl up` said the head was still running (a
// killed daemon stays a zombie until init reaps it, and a pid may be reused) and exited 1. It
// now starts what is not running; the node, still up, registers with the new head.
TEST(SecurityTest, UpRestartsACrashedHead) {
  testing_util::TempDir dir("security-up-again");
  const std::string state = dir.path() + "/state";
  const std::string up_port = absl::StrCat("--port=", FreePort());
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {kBin + "/raylightctl", "--state-dir=" + state});
    return testing_util::RunToCompletion(args, dir.path() + "/ctl.log", std::chrono::seconds(120));
  };
  ASSERT_TRUE(ctl({"up", up_port, "--num-cpu-workers=1"}).ok())
      << testing_util::ReadFileOrEmpty(dir.path() + "/ctl.log");
  const int head = std::atoi(testing_util::ReadFileOrEmpty(state + "/head.pid").c_str());
  const int node = std::atoi(testing_util::ReadFileOrEmpty(state + "/node.pid").c_str());
  ASSERT_GT(head, 0);
  ASSERT_EQ(kill(head, SIGKILL), 0);
  EXPECT_TRUE(ctl({"up", up_port, "--num-cpu-workers=1"}).ok())
      << testing_util::ReadFileOrEmpty(dir.path() + "/ctl.log");
  EXPECT_NE(std::atoi(testing_util::ReadFileOrEmpty(state + "/head.pid").c_str()), head);
  EXPECT_EQ(std::atoi(testing_util::ReadFileOrEmpty(state + "/node.pid").c_str()), node);
  EXPECT_TRUE(ctl({"status"}).ok());
  // A second `up` on a running cluster changes nothing and succeeds.
  EXPECT_TRUE(ctl({"up", up_port, "--num-cpu-workers=1"}).ok());
  EXPECT_NE(testing_util::ReadFileOrEmpty(dir.path() + "/ctl.log").find("head is already running"),
            std::string::npos);
  EXPECT_TRUE(ctl({"down"}).ok());
}

// Issue #23, item 11: a directory given as conditioning was an uncaught exception (rc 134).
TEST(SecurityTest, ADirectoryAsConditioningIsAnErrorNotACrash) {
  testing_util::TempDir dir("security-cond-dir");
  auto [code, log] = RunRefused(
      {kBin + "/raylightctl", "--state-dir=" + dir.path() + "/state", "--address=127.0.0.1:1",
       "sample", "--model=m.safetensors", "--cond=" + dir.path()},
      dir.path() + "/ctl.log");
  EXPECT_EQ(code, 1) << log;
  EXPECT_NE(log.find("--cond: '" + dir.path() + "' is not a file"), std::string::npos) << log;
}

}  // namespace
}  // namespace raylight
