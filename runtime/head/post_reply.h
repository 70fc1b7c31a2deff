// The head's gRPC services answer on the io thread: check the cluster token, post the handler
// onto the io_context, and let the Reply it is given fill the response and finish the RPC. No
// handler blocks a gRPC thread. Shared by HeadService and JobService.
#pragma once

#include <grpcpp/grpcpp.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "runtime/head/head_manager.h"
#include "runtime/rpc/auth.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::head {

template <typename Response, typename Handler>
grpc::ServerUnaryReactor* PostToIo(boost::asio::io_context& io, const rpc::ServerAuth& auth,
                                   grpc::CallbackServerContext* context, const char* method,
                                   Response* response, Handler handler) {
  auto* reactor = context->DefaultReactor();
  if (grpc::Status denied = auth.Check(*context, method); !denied.ok()) {
    reactor->Finish(denied);
    return reactor;
  }
  boost::asio::post(io, [handler = std::move(handler), reactor, response]() mutable {
    handler(Reply<Response>([reactor, response](absl::StatusOr<Response> result) {
      if (result.ok()) *response = *std::move(result);
      reactor->Finish(rpc::ToGrpc(result.status()));
    }));
  });
  return reactor;
}

}  // namespace raylight::head
