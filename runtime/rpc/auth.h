// The cluster token: when configured, every RPC to the head and to workers must carry
// `authorization: Bearer <token>`; anything else is UNAUTHENTICATED (and logged). Clients attach
// it per call (call credentials are refused by gRPC on insecure channels).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grpc {
class ClientContext;
class ServerContextBase;
class Status;
}  // namespace grpc

namespace raylight::rpc {

inline constexpr char kAuthMetadataKey[] = "authorization";

class ClusterToken {
 public:
  ClusterToken() = default;  // no token: authentication off
  explicit ClusterToken(std::string token) : token_(std::move(token)) {}

  // The token from `token_file` if given, else from `env_value` (RAYLIGHT_TOKEN, read by the
  // caller's flag table), else none. Surrounding whitespace is ignored; an empty file is an error.
  static absl::StatusOr<ClusterToken> Load(const std::string& token_file,
                                           const std::string& env_value);

  bool enabled() const { return !token_.empty(); }

  // Server side: OK when authentication is off or the bearer token matches (constant time).
  grpc::Status Check(const grpc::ServerContextBase& context, const char* method) const;
  // Client side: adds the bearer metadata (nothing when off).
  void Attach(grpc::ClientContext& context) const;

 private:
  std::string token_;
};

// True when a and b are equal, in time that depends only on their lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// 127.0.0.0/8, ::1 or localhost.
bool IsLoopbackHost(absl::string_view host);

// A service that would listen beyond this machine needs a cluster token, unless the operator
// says --insecure: OK on loopback, with a token, or insecure; FailedPrecondition naming `what`
// and the fix otherwise. (No TLS yet: the token is the one credential; issue #23.)
absl::Status CheckExposure(absl::string_view what, absl::string_view host,
                           const ClusterToken& token, bool insecure);

}  // namespace raylight::rpc
