// A daemon's security settings (head, node, worker): one flag table, one loader, and how a node
// hands them on to the workers it starts. See auth.h (tokens) and tls.h (certificates).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/rpc/auth.h"
#include "runtime/rpc/tls.h"

namespace CLI {
class App;
}

namespace raylight::rpc {

struct SecurityFlags {
  std::string token_file, token;                // the cluster token (clients'); RAYLIGHT_TOKEN
  std::string member_token_file, member_token;  // the members'; RAYLIGHT_MEMBER_TOKEN
  std::string tls_dir;                          // ca.pem, cert.pem, key.pem; RAYLIGHT_TLS_DIR
  bool insecure = false;                        // listen beyond loopback without a token and TLS
};

// --token-file, --token, --member-token-file, --member-token, --tls-dir, --insecure.
void AddSecurityFlags(CLI::App& app, SecurityFlags& flags);

// The same settings for a child daemon: files as flags, tokens given inline through the
// environment (a command line is visible to every user in ps).
void PassSecurityFlags(const SecurityFlags& flags, std::vector<std::string>& argv,
                       std::vector<std::pair<std::string, std::string>>& env);

struct Security {
  ClusterToken client;  // the cluster token
  ClusterToken member;  // the member token, or the cluster token when none is given
  bool separate_member_token = false;
  TlsMaterial tls;
  bool insecure = false;

  // What this daemon's servers accept.
  ServerAuth server_auth() const {
    return ServerAuth(client, separate_member_token ? member : ClusterToken(), tls.enabled());
  }
};

// Loads tokens and TLS material (errors name the flag), then refuses a non-loopback `host`
// without a token and TLS unless insecure (CheckExposure). `what` names the daemon.
absl::StatusOr<Security> LoadSecurity(const SecurityFlags& flags, const std::string& what,
                                      const std::string& host);

}  // namespace raylight::rpc
