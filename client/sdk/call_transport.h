// One call to an actor on a worker, over either transport: a unary Call when the arguments fit
// one message and the caller does not watch events live, else a CallStream (arguments in chunks,
// events as they happen, result in chunks). Blocking; thread-safe.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "raylight/v1/worker.grpc.pb.h"
#include "runtime/rpc/auth.h"

namespace raylight::client {

using EventCallback = std::function<void(const std::string& event)>;

absl::StatusOr<std::string> CallActorOnce(v1::Worker::Stub& stub, const rpc::ClusterToken& token,
                                          const v1::CallHeader& header, const std::string& args,
                                          absl::Duration timeout, const EventCallback& on_event);

}  // namespace raylight::client
