#include "runtime/worker/worker_service.h"

#include <atomic>
#include <deque>

#include "absl/strings/str_cat.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::worker {
namespace {

using rpc::ToGrpc;

// One streamed call: reads the argument chunks, runs the call, writes events and result chunks.
// Writes are queued (one in flight at a time, as gRPC requires); Finish comes after the last
// write completes. Deletes itself in OnDone, which gRPC calls only after Finish, which comes only
// after the runtime answered: no callback outlives it.
class CallStreamReactor final : public grpc::ServerBidiReactor<v1::CallChunk, v1::CallOutput> {
 public:
  CallStreamReactor(WorkerRuntime& runtime, const rpc::ServerAuth& auth,
                    grpc::CallbackServerContext* context, std::atomic<int64_t>& receiving,
                    int64_t budget)
      : runtime_(runtime), receiving_(receiving), budget_(budget) {
    if (grpc::Status denied = auth.Check(*context, "Worker.CallStream"); !denied.ok()) {
      Finish(denied);
      return;
    }
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "CallChunk: the stream ended before a chunk with last = true"));
      return;
    }
    if (first_chunk_) {
      header_ = chunk_.header();
      first_chunk_ = false;
    }
    if (static_cast<int64_t>(args_.size() + chunk_.data().size()) > kMaxCallPayloadBytes) {
      ReleaseReceived();
      Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("CallChunk.data: arguments exceed ", kMaxCallPayloadBytes, " bytes")));
      return;
    }
    const int64_t size = static_cast<int64_t>(chunk_.data().size());
    if (receiving_.fetch_add(size) + size > budget_) {
      receiving_.fetch_sub(size);
      ReleaseReceived();
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("CallChunk.data: this worker is already receiving its ",
                                       "limit of ", budget_, " argument bytes; retry later")));
      return;
    }
    held_ += size;
    args_.append(chunk_.data());
    if (!chunk_.last()) {
      StartRead(&chunk_);
      return;
    }
    ReleaseReceived();  // the arguments are the call's now
    runtime_.Call(
        header_, std::move(args_),
        [this](std::string event) {
          v1::CallOutput output;
          output.set_event(std::move(event));
          Enqueue(std::move(output));
        },
        [this](absl::StatusOr<std::string> result) {
          if (result.ok()) {
            const std::string& bytes = *result;
            size_t offset = 0;
            do {
              size_t n = std::min(rpc::kChunkBytes, bytes.size() - offset);
              v1::CallOutput output;
              output.set_result_data(bytes.substr(offset, n));
              offset += n;
              output.set_last(offset == bytes.size());
              Enqueue(std::move(output));
            } while (offset < bytes.size());
          }
          Complete(result.status());
        },
        cancellation_);
  }

  // The caller cancelled or went away: the call sees it through CallContext::cancelled, and a
  // group call blocked in a collective is aborted (CallCancellation).
  void OnCancel() override { cancellation_->Cancel(); }

  void OnWriteDone(bool ok) override {
    const v1::CallOutput* next = nullptr;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      outputs_.pop_front();
      if (!ok) {
        broken_ = true;  // the caller went away: drop the rest
        outputs_.clear();
      }
      if (!outputs_.empty()) {
        next = &outputs_.front();
      } else {
        writing_ = false;
        finish = ShouldFinishLocked();
      }
    }
    // gRPC calls and Finish (which may delete this) happen outside the lock.
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(ToGrpc(final_status_));
  }

  void OnDone() override {
    ReleaseReceived();
    delete this;
  }

 private:
  void ReleaseReceived() {
    receiving_.fetch_sub(held_);
    held_ = 0;
  }

  void Enqueue(v1::CallOutput output) {
    const v1::CallOutput* start = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (broken_) return;
      outputs_.push_back(std::move(output));
      if (!writing_) {
        writing_ = true;
        start = &outputs_.front();
      }
    }
    if (start != nullptr) StartWrite(start);
  }

  void Complete(absl::Status status) {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      final_status_ = std::move(status);
      completed_ = true;
      finish = ShouldFinishLocked();
    }
    if (finish) Finish(ToGrpc(final_status_));
  }

  // True once: the call completed and every write is done.
  bool ShouldFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!completed_ || writing_ || finished_) return false;
    finished_ = true;
    return true;
  }

  WorkerRuntime& runtime_;
  v1::CallChunk chunk_;
  bool first_chunk_ = true;
  v1::CallHeader header_;
  std::string args_;

  absl::Mutex mu_;
  std::deque<v1::CallOutput> outputs_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool completed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_;  // written once before finished_ is set
  const std::shared_ptr<CallCancellation> cancellation_ = std::make_shared<CallCancellation>();
  std::atomic<int64_t>& receiving_;  // the worker's bytes being received, all streams
  const int64_t budget_;
  int64_t held_ = 0;  // this stream's part of receiving_
};

}  // namespace

WorkerService::WorkerService(WorkerRuntime& runtime, rpc::ServerAuth auth,
                             std::function<v1::WorkerInfo()> stats,
                             std::function<void()> request_shutdown, int64_t receive_budget_bytes)
    : runtime_(runtime),
      auth_(std::move(auth)),
      receive_budget_bytes_(receive_budget_bytes),
      stats_(std::move(stats)),
      request_shutdown_(std::move(request_shutdown)) {}

grpc::ServerUnaryReactor* WorkerService::Reject(grpc::CallbackServerContext* context,
                                                const char* method) {
  grpc::Status denied = auth_.Check(*context, method);
  if (denied.ok()) return nullptr;
  auto* reactor = context->DefaultReactor();
  reactor->Finish(denied);
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::StartActor(grpc::CallbackServerContext* context,
                                                    const v1::StartActorRequest* request,
                                                    v1::StartActorResponse*) {
  if (auto* rejected = Reject(context, "Worker.StartActor")) return rejected;
  auto* reactor = context->DefaultReactor();
  runtime_.StartActor(*request,
                      [reactor](absl::Status status) { reactor->Finish(ToGrpc(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::StopActor(grpc::CallbackServerContext* context,
                                                   const v1::StopActorRequest* request,
                                                   v1::StopActorResponse*) {
  if (auto* rejected = Reject(context, "Worker.StopActor")) return rejected;
  auto* reactor = context->DefaultReactor();
  runtime_.StopActor(request->actor_id(),
                     [reactor](absl::Status status) { reactor->Finish(ToGrpc(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::JoinGroup(grpc::CallbackServerContext* context,
                                                   const v1::JoinGroupRequest* request,
                                                   v1::JoinGroupResponse*) {
  if (auto* rejected = Reject(context, "Worker.JoinGroup")) return rejected;
  auto* reactor = context->DefaultReactor();
  runtime_.JoinGroup(request->group(), request->rank(),
                     [reactor](absl::Status status) { reactor->Finish(ToGrpc(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::LeaveGroup(grpc::CallbackServerContext* context,
                                                    const v1::LeaveGroupRequest* request,
                                                    v1::LeaveGroupResponse*) {
  if (auto* rejected = Reject(context, "Worker.LeaveGroup")) return rejected;
  auto* reactor = context->DefaultReactor();
  runtime_.LeaveGroup(request->group_id(), request->incarnation(), request->reason(),
                      [reactor](absl::Status status) { reactor->Finish(ToGrpc(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Call(grpc::CallbackServerContext* context,
                                              const v1::CallRequest* request,
                                              v1::CallResponse* response) {
  if (auto* rejected = Reject(context, "Worker.Call")) return rejected;
  auto* reactor = context->DefaultReactor();
  // `response` stays valid until Finish; events are appended on the executor thread only.
  runtime_.Call(
      request->header(), request->args(),
      [response](std::string event) { response->add_events(std::move(event)); },
      [reactor, response](absl::StatusOr<std::string> result) {
        if (result.ok()) response->set_result(*std::move(result));
        reactor->Finish(ToGrpc(result.status()));
      },
      std::make_shared<CallCancellation>([context] { return context->IsCancelled(); }));
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::CancelCall(grpc::CallbackServerContext* context,
                                                    const v1::CancelCallRequest* request,
                                                    v1::CancelCallResponse* response) {
  if (auto* rejected = Reject(context, "Worker.CancelCall")) return rejected;
  response->set_found(runtime_.StopCall(request->caller_id()));
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::CallChunk, v1::CallOutput>* WorkerService::CallStream(
    grpc::CallbackServerContext* context) {
  return new CallStreamReactor(runtime_, auth_, context, receiving_bytes_, receive_budget_bytes_);
}

grpc::ServerUnaryReactor* WorkerService::GetStats(grpc::CallbackServerContext* context,
                                                  const v1::GetStatsRequest*,
                                                  v1::WorkerInfo* response) {
  if (auto* rejected = Reject(context, "Worker.GetStats")) return rejected;
  *response = stats_();
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Shutdown(grpc::CallbackServerContext* context,
                                                  const v1::ShutdownRequest*,
                                                  v1::ShutdownResponse*) {
  if (auto* rejected = Reject(context, "Worker.Shutdown")) return rejected;
  request_shutdown_();
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace raylight::worker
