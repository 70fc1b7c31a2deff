// One call to an actor on a worker, over either transport: a unary Call when the arguments fit
// one message and the caller does not watch events live, else a CallStream (arguments in chunks,
// events as they happen, result in chunks). Blocking; thread-safe. Used by the client SDK and by
// the head (which runs jobs as group calls).
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "raylight/v1/worker.grpc.pb.h"
#include "runtime/rpc/auth.h"

namespace raylight::rpc {

using EventCallback = std::function<void(const std::string& event)>;

// Called with the call's context before the call starts, so that another thread can
// TryCancel() it, and with nullptr before the context is destroyed (inside CallActorOnce).
using ContextHook = std::function<void(grpc::ClientContext* context)>;

absl::StatusOr<std::string> CallActorOnce(v1::Worker::Stub& stub, const ClusterToken& token,
                                          const v1::CallHeader& header, const std::string& args,
                                          absl::Duration timeout, const EventCallback& on_event,
                                          const ContextHook& on_context = nullptr);

}  // namespace raylight::rpc
