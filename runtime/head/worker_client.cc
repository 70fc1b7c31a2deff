#include "runtime/head/worker_client.h"

#include <grpcpp/grpcpp.h>

#include <boost/asio/post.hpp>

#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::head {
namespace {

// Starting an actor runs its constructor; control calls are quick.
constexpr std::chrono::milliseconds kStartTimeout = std::chrono::seconds(120);
constexpr std::chrono::milliseconds kControlTimeout = std::chrono::seconds(30);

}  // namespace

WorkerClient::WorkerClient(boost::asio::io_context& io, rpc::ClusterToken token)
    : io_(io), token_(std::move(token)) {}

WorkerClient::~WorkerClient() = default;

v1::Worker::Stub& WorkerClient::StubFor(const std::string& address) {
  auto& stub = stubs_[address];
  if (stub == nullptr) stub = v1::Worker::NewStub(rpc::MakeChannel(address));
  return *stub;
}

template <typename Request, typename Response, typename Method>
void WorkerClient::Invoke(const std::string& address, Request request,
                          std::chrono::milliseconds timeout, Method method, Done done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
    Done done;
  };
  auto* call = new Call;
  call->request = std::move(request);
  call->done = std::move(done);
  call->context.set_deadline(std::chrono::system_clock::now() + timeout);
  token_.Attach(call->context);
  method(StubFor(address).async(), &call->context, &call->request, &call->response,
         [this, call](grpc::Status status) {
           boost::asio::post(io_, [call, status]() {
             call->done(rpc::FromGrpc(status));
             delete call;
           });
         });
}

void WorkerClient::StartActor(const std::string& address, v1::StartActorRequest request,
                              Done done) {
  Invoke<v1::StartActorRequest, v1::StartActorResponse>(
      address, std::move(request), kStartTimeout,
      [](auto* async, auto* context, auto* request, auto* response, auto callback) {
        async->StartActor(context, request, response, std::move(callback));
      },
      std::move(done));
}

void WorkerClient::StopActor(const std::string& address, const std::string& actor_id, Done done) {
  v1::StopActorRequest request;
  request.set_actor_id(actor_id);
  Invoke<v1::StopActorRequest, v1::StopActorResponse>(
      address, std::move(request), kControlTimeout,
      [](auto* async, auto* context, auto* request, auto* response, auto callback) {
        async->StopActor(context, request, response, std::move(callback));
      },
      std::move(done));
}

void WorkerClient::JoinGroup(const std::string& address, v1::JoinGroupRequest request, Done done) {
  Invoke<v1::JoinGroupRequest, v1::JoinGroupResponse>(
      address, std::move(request), kControlTimeout,
      [](auto* async, auto* context, auto* request, auto* response, auto callback) {
        async->JoinGroup(context, request, response, std::move(callback));
      },
      std::move(done));
}

void WorkerClient::LeaveGroup(const std::string& address, v1::LeaveGroupRequest request,
                              Done done) {
  Invoke<v1::LeaveGroupRequest, v1::LeaveGroupResponse>(
      address, std::move(request), kControlTimeout,
      [](auto* async, auto* context, auto* request, auto* response, auto callback) {
        async->LeaveGroup(context, request, response, std::move(callback));
      },
      std::move(done));
}

}  // namespace raylight::head
