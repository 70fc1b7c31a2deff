// WorkerService: the gRPC adapter (raylight.v1.Worker, callback API) over a WorkerRuntime. It
// checks the cluster token, converts messages, and answers when the runtime's executor finishes;
// no handler blocks a gRPC thread.
#pragma once

#include <atomic>
#include <functional>

#include "raylight/v1/worker.grpc.pb.h"
#include "runtime/rpc/auth.h"
#include "runtime/worker/worker_runtime.h"

namespace raylight::worker {

// Bound on the assembled arguments of one streamed call, checked before they are buffered.
inline constexpr int64_t kMaxCallPayloadBytes = int64_t{4} << 30;
// All CallStreams together may hold this many argument bytes while they are being received
// (issue #23, item 10: each stream could hold 4 GiB, with no overall cap); a chunk beyond it
// ends its stream with RESOURCE_EXHAUSTED. RAYLIGHT_WORKER_RECEIVE_BYTES overrides it.
inline constexpr int64_t kDefaultReceiveBudgetBytes = int64_t{16} << 30;

class WorkerService final : public v1::Worker::CallbackService {
 public:
  // `runtime` must outlive the service. `stats` fills GetStats; `request_shutdown` starts a
  // graceful exit (it must not block).
  WorkerService(WorkerRuntime& runtime, rpc::ServerAuth auth, std::function<v1::WorkerInfo()> stats,
                std::function<void()> request_shutdown,
                int64_t receive_budget_bytes = kDefaultReceiveBudgetBytes);

  grpc::ServerUnaryReactor* StartActor(grpc::CallbackServerContext* context,
                                       const v1::StartActorRequest* request,
                                       v1::StartActorResponse* response) override;
  grpc::ServerUnaryReactor* StopActor(grpc::CallbackServerContext* context,
                                      const v1::StopActorRequest* request,
                                      v1::StopActorResponse* response) override;
  grpc::ServerUnaryReactor* JoinGroup(grpc::CallbackServerContext* context,
                                      const v1::JoinGroupRequest* request,
                                      v1::JoinGroupResponse* response) override;
  grpc::ServerUnaryReactor* LeaveGroup(grpc::CallbackServerContext* context,
                                       const v1::LeaveGroupRequest* request,
                                       v1::LeaveGroupResponse* response) override;
  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context,
                                 const v1::CallRequest* request,
                                 v1::CallResponse* response) override;
  grpc::ServerUnaryReactor* CancelCall(grpc::CallbackServerContext* context,
                                       const v1::CancelCallRequest* request,
                                       v1::CancelCallResponse* response) override;
  grpc::ServerBidiReactor<v1::CallChunk, v1::CallOutput>* CallStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::WorkerInfo* response) override;
  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* context,
                                     const v1::ShutdownRequest* request,
                                     v1::ShutdownResponse* response) override;

 private:
  // The reactor, already finished with UNAUTHENTICATED when the token is wrong; else null.
  grpc::ServerUnaryReactor* Reject(grpc::CallbackServerContext* context, const char* method);

  WorkerRuntime& runtime_;
  const rpc::ServerAuth auth_;
  const int64_t receive_budget_bytes_;
  std::atomic<int64_t> receiving_bytes_{0};  // held by CallStreams still receiving arguments
  std::function<v1::WorkerInfo()> stats_;
  std::function<void()> request_shutdown_;
};

}  // namespace raylight::worker
