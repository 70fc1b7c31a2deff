// WorkerClient: the head's asynchronous calls to workers (place and stop actors, join and leave
// groups). Completions are posted onto the head's io_context, so the manager only ever runs on its
// one thread. Stubs are cached per address.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "raylight/v1/worker.grpc.pb.h"
#include "runtime/rpc/auth.h"

namespace raylight::head {

class WorkerClient {
 public:
  using Done = absl::AnyInvocable<void(absl::Status)>;

  WorkerClient(boost::asio::io_context& io, rpc::ClusterToken token);
  ~WorkerClient();

  // All on the io thread; `done` runs there too.
  void StartActor(const std::string& address, v1::StartActorRequest request, Done done);
  void StopActor(const std::string& address, const std::string& actor_id, Done done);
  void JoinGroup(const std::string& address, v1::JoinGroupRequest request, Done done);
  void LeaveGroup(const std::string& address, v1::LeaveGroupRequest request, Done done);

 private:
  v1::Worker::Stub& StubFor(const std::string& address);
  template <typename Request, typename Response, typename Method>
  void Invoke(const std::string& address, Request request, std::chrono::milliseconds timeout,
              Method method, Done done);

  boost::asio::io_context& io_;
  const rpc::ClusterToken token_;
  absl::flat_hash_map<std::string, std::unique_ptr<v1::Worker::Stub>> stubs_;
};

}  // namespace raylight::head
