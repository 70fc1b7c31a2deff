// The cluster's credentials: when configured, every RPC to the head and to workers must carry
// `authorization: Bearer <token>`; anything else is UNAUTHENTICATED (and logged). Callers attach
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

  // Whether the call carries this token ("authorization: Bearer <token>"; constant time).
  bool PresentedBy(const grpc::ServerContextBase& context) const;
  // Client side: adds the bearer metadata (nothing when off).
  void Attach(grpc::ClientContext& context) const;

 private:
  std::string token_;
};

// What a server accepts. Two credentials: clients' (the cluster token: jobs, actors, groups,
// cluster state, actor calls) and members' (the member token: node and worker registration and
// heartbeats, the KV store's rendezvous, workers' actor and group control, shutdown), so that a
// client token cannot drive a worker or pose as a node. A member token is accepted wherever a
// client token is. Without a member token the cluster token serves both (one shared secret, as
// before the split). With TLS a member RPC also needs a peer certificate verified by the cluster
// CA (mutual TLS): a stolen member token alone does not make a member.
class ServerAuth {
 public:
  ServerAuth() = default;  // authentication off
  ServerAuth(ClusterToken client, ClusterToken member, bool tls)
      : client_(std::move(client)), member_(std::move(member)), tls_(tls) {}

  bool enabled() const { return client_.enabled() || member_.enabled(); }
  // OK, or UNAUTHENTICATED (no or a wrong token) / PERMISSION_DENIED (a client's credential on
  // a member RPC), naming `method` (as "Service.Method") in the log.
  grpc::Status Check(const grpc::ServerContextBase& context, const char* method) const;

  // Whether `method` ("Service.Method") is for cluster members only.
  static bool MemberOnly(absl::string_view method);

 private:
  ClusterToken client_, member_;
  bool tls_ = false;
};

// True when a and b are equal, in time that depends only on their lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// 127.0.0.0/8, ::1 or localhost.
bool IsLoopbackHost(absl::string_view host);

// A service that would listen beyond this machine needs a cluster token and TLS, unless the
// operator says --insecure: OK on loopback, with both, or insecure; FailedPrecondition naming
// `what` and the fix otherwise.
absl::Status CheckExposure(absl::string_view what, absl::string_view host,
                           const ClusterToken& token, bool tls, bool insecure);

}  // namespace raylight::rpc
