// The C++ client SDK: connect to a raylight-head, create and call actors, form collective groups
// and make SPMD group calls.
//
//   auto client = raylight::client::Client::Connect({.address = "127.0.0.1:6380"});
//   auto actor = (*client)->CreateActor(spec);
//   auto reply = actor->Call<EchoResponse>("echo", request);
//
// Calls go straight to the worker hosting the actor (the head only resolves where it lives), in
// the order each handle submits them. A handle re-resolves the actor through the head when it
// moved (restart), waiting for it to be ALIVE again; a call to a DEAD actor fails with
// FAILED_PRECONDITION and the reason. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "raylight/v1/head.grpc.pb.h"
#include "raylight/v1/worker.grpc.pb.h"
#include "runtime/rpc/auth.h"
#include "runtime/rpc/call_transport.h"
#include "runtime/rpc/tls.h"

namespace raylight::client {

struct ClientOptions {
  std::string address;  // the head, host:port
  std::string token;    // cluster token; empty when auth is off
  std::string tls_ca;   // the cluster's CA certificate (PEM file): TLS to head and workers
  absl::Duration rpc_timeout = absl::Seconds(30);      // control RPCs
  absl::Duration call_timeout = absl::Minutes(30);     // actor calls
  absl::Duration resolve_timeout = absl::Seconds(60);  // waiting for a RESTARTING actor
  // Own TCP connections instead of the process-wide shared ones (separate clients in benchmarks).
  bool dedicated_channels = false;
};

struct CallOptions {
  absl::Duration timeout = absl::ZeroDuration();  // zero: the client's call_timeout
  rpc::EventCallback on_event;                    // events as the actor emits them
};

class Client;

class ActorHandle {
 public:
  ActorHandle(Client& client, std::string actor_id);
  ActorHandle(ActorHandle&&) = delete;
  ActorHandle(const ActorHandle&) = delete;

  const std::string& actor_id() const { return actor_id_; }

  absl::StatusOr<std::string> Call(const std::string& method, const std::string& args,
                                   const CallOptions& options = {});
  template <typename Response, typename Request>
  absl::StatusOr<Response> Call(const std::string& method, const Request& request,
                                const CallOptions& options = {}) {
    auto bytes = Call(method, request.SerializeAsString(), options);
    if (!bytes.ok()) return bytes.status();
    Response response;
    if (!response.ParseFromString(*bytes)) {
      return absl::DataLossError("result does not parse as " + Response::descriptor()->full_name());
    }
    return response;
  }

  // Unary, non-blocking; `done` runs on a gRPC thread. The actor must be resolved (one Call or
  // Resolve first). Used for many calls in flight.
  void CallAsync(const std::string& method, std::string args,
                 std::function<void(absl::StatusOr<std::string>)> done);
  absl::Status Resolve();

 private:
  struct Target {
    std::shared_ptr<v1::Worker::Stub> stub;
    int64_t incarnation = 0;
  };
  absl::StatusOr<Target> CurrentTarget();
  void Invalidate(int64_t incarnation);
  v1::CallHeader NextHeader(const std::string& method, const Target& target);

  Client& client_;
  const std::string actor_id_;
  const std::string caller_id_;
  absl::Mutex mu_;
  std::optional<Target> target_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
};

class GroupHandle {
 public:
  GroupHandle(Client& client, v1::GroupInfo info) : client_(client), info_(std::move(info)) {}
  const v1::GroupInfo& info() const { return info_; }

  // SPMD: `method(args)` on every rank at once; rank 0's events and result. Fails (naming the
  // rank) if any rank fails.
  absl::StatusOr<std::string> Call(const std::string& method, const std::string& args,
                                   const CallOptions& options = {});

 private:
  Client& client_;
  v1::GroupInfo info_;
};

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options);

  absl::StatusOr<v1::ClusterState> ClusterState();
  absl::StatusOr<v1::ClusterState> WaitCluster(int min_nodes, int min_workers,
                                               absl::Duration timeout);

  absl::StatusOr<std::unique_ptr<ActorHandle>> CreateActor(
      const v1::ActorSpec& spec, absl::Duration wait_alive = absl::Seconds(60));
  absl::StatusOr<v1::ActorInfo> GetActorInfo(const std::string& actor_id, const std::string& name,
                                             absl::Duration wait_alive = absl::ZeroDuration());
  absl::StatusOr<std::unique_ptr<ActorHandle>> GetActor(const std::string& name);
  absl::Status KillActor(const std::string& actor_id, bool no_restart);

  absl::StatusOr<std::unique_ptr<GroupHandle>> CreateGroup(
      const v1::GroupSpec& spec, absl::Duration timeout = absl::ZeroDuration());
  absl::StatusOr<v1::GroupInfo> GetGroup(const std::string& name);
  absl::Status RemoveGroup(const std::string& name);

  const ClientOptions& options() const { return options_; }
  const rpc::ClusterToken& token() const { return token_; }
  const rpc::TlsMaterial& tls() const { return tls_; }
  v1::Head::Stub& head() { return *head_; }
  std::shared_ptr<v1::Worker::Stub> WorkerStub(const std::string& address);
  // A context with the control-RPC deadline and the token.
  void Prepare(grpc::ClientContext& context, absl::Duration timeout = absl::ZeroDuration()) const;

 private:
  Client(ClientOptions options, rpc::TlsMaterial tls);
  absl::StatusOr<v1::ClusterState> WaitClusterOnce(int min_nodes, int min_workers,
                                                   absl::Duration timeout);

  const ClientOptions options_;
  const rpc::ClusterToken token_;
  const rpc::TlsMaterial tls_;
  std::unique_ptr<v1::Head::Stub> head_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<v1::Worker::Stub>> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace raylight::client
