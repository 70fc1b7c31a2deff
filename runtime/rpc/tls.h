// TLS for every Raylight connection (runtime/rpc/certificates.h makes the files): members (head,
// nodes, workers) hold the cluster CA and the member certificate and key, and present the
// certificate both as servers and as clients (mutual TLS); clients hold the CA certificate only.
// Servers request a client certificate and verify it when one is presented: a verified peer is a
// member (ServerAuth requires one for member RPCs when TLS is on), a peer without one a client.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace raylight::rpc {

struct TlsMaterial {
  std::string ca_pem;    // the cluster CA; empty: plaintext
  std::string cert_pem;  // the member certificate (empty for a client)
  std::string key_pem;
  bool enabled() const { return !ca_pem.empty(); }
};

// A member's material from a TLS directory (ca.pem, cert.pem, key.pem); "" is plaintext. The key
// must be readable by its owner only. Errors name `tls_dir`.
absl::StatusOr<TlsMaterial> LoadMemberTls(const std::string& tls_dir);
// A client's: the CA certificate only; "" is plaintext. Errors name `tls_ca`.
absl::StatusOr<TlsMaterial> LoadClientTls(const std::string& ca_file);

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TlsMaterial& tls);
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsMaterial& tls);

}  // namespace raylight::rpc
