// Secure by default (issue #23, items 1 and 3): the daemons listen on loopback unless given a
// host, refuse a host beyond loopback without a cluster token (unless --insecure), refuse a token
// file others can read, and keep their state files private; `raylightctl up` makes a token of its
// own (0600) that every service then requires. Real binaries on real ports.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "runtime/common/child_process.h"
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

TEST(SecurityTest, AnOpenAddressNeedsATokenOrInsecure) {
  testing_util::TempDir dir("security-open");
  const std::string port_file = dir.path() + "/head.port";
  std::vector<std::string> head = {kBin + "/raylight-head", "--host=0.0.0.0", "--port=0",
                                   "--port-file=" + port_file, "--state-dir=" + dir.path()};
  auto [code, log] = RunRefused(head, dir.path() + "/head.log");
  EXPECT_EQ(code, 2) << log;
  EXPECT_NE(log.find("--insecure"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(port_file));
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
  EXPECT_TRUE(ctl({"down"}).ok());
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
