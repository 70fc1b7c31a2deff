#include "runtime/rpc/security.h"

#include <CLI/CLI.hpp>

namespace raylight::rpc {

void AddSecurityFlags(CLI::App& app, SecurityFlags& flags) {
  app.add_option("--token-file", flags.token_file, "file holding the cluster token (clients')");
  app.add_option("--token", flags.token, "cluster token")->envname("RAYLIGHT_TOKEN");
  app.add_option("--member-token-file", flags.member_token_file,
                 "file holding the member token (nodes, workers, the head's calls to workers)");
  app.add_option("--member-token", flags.member_token, "member token")
      ->envname("RAYLIGHT_MEMBER_TOKEN");
  app.add_option("--tls-dir", flags.tls_dir,
                 "directory with the cluster's ca.pem, cert.pem and key.pem (mutual TLS)")
      ->envname("RAYLIGHT_TLS_DIR");
  app.add_flag("--insecure", flags.insecure,
               "listen beyond loopback without a cluster token and TLS (a trusted network only)");
}

void PassSecurityFlags(const SecurityFlags& flags, std::vector<std::string>& argv,
                       std::vector<std::pair<std::string, std::string>>& env) {
  if (!flags.token_file.empty()) argv.push_back("--token-file=" + flags.token_file);
  if (flags.token_file.empty() && !flags.token.empty())
    env.emplace_back("RAYLIGHT_TOKEN", flags.token);
  if (!flags.member_token_file.empty()) {
    argv.push_back("--member-token-file=" + flags.member_token_file);
  }
  if (flags.member_token_file.empty() && !flags.member_token.empty()) {
    env.emplace_back("RAYLIGHT_MEMBER_TOKEN", flags.member_token);
  }
  if (!flags.tls_dir.empty()) argv.push_back("--tls-dir=" + flags.tls_dir);
  if (flags.insecure) argv.push_back("--insecure");
}

absl::StatusOr<Security> LoadSecurity(const SecurityFlags& flags, const std::string& what,
                                      const std::string& host) {
  Security security;
  auto client = ClusterToken::Load(flags.token_file, flags.token);
  if (!client.ok()) return client.status();
  security.client = *std::move(client);
  auto member = ClusterToken::Load(flags.member_token_file, flags.member_token);
  if (!member.ok()) {
    return absl::Status(member.status().code(), absl::StrCat("member_", member.status().message()));
  }
  security.separate_member_token = member->enabled();
  security.member = member->enabled() ? *std::move(member) : security.client;
  auto tls = LoadMemberTls(flags.tls_dir);
  if (!tls.ok()) return tls.status();
  security.tls = *std::move(tls);
  security.insecure = flags.insecure;
  if (auto exposed =
          CheckExposure(what, host, security.member, security.tls.enabled(), flags.insecure);
      !exposed.ok()) {
    return exposed;
  }
  return security;
}

}  // namespace raylight::rpc
