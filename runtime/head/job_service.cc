#include "runtime/head/job_service.h"

#include <boost/asio/post.hpp>
#include <deque>

#include "absl/synchronization/mutex.h"
#include "runtime/head/post_reply.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::head {
namespace {

// One WatchJob stream: the manager (io thread) pushes events as its JobWatcher; gRPC drives the
// writes, one in flight. Decisions are made under the lock, gRPC is called outside it (a reaction
// may run inline). The reactor owns itself until OnDone; the manager's reference keeps the object
// (not the stream) alive after that, and Send then answers false.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobEvent>, public JobWatcher {
 public:
  static std::shared_ptr<WatchReactor> Create() {
    std::shared_ptr<WatchReactor> reactor(new WatchReactor());
    reactor->self_ = reactor;
    return reactor;
  }

  bool Send(const v1::JobEvent& event) override {
    const v1::JobEvent* start = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (broken_ || closing_ || finished_) return false;
      queue_.push_back(event);
      if (!writing_) {
        writing_ = true;
        start = &queue_.front();
      }
    }
    if (start != nullptr) StartWrite(start);
    return true;
  }

  void Close(const absl::Status& status) override {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (closing_ || finished_) return;
      closing_ = true;
      final_status_ = rpc::ToGrpc(status);
      finish = !writing_;
      finished_ = finish;
    }
    if (finish) Finish(final_status_);
  }

  void OnWriteDone(bool ok) override {
    const v1::JobEvent* next = nullptr;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      queue_.pop_front();
      if (!ok) {
        broken_ = true;
        queue_.clear();
      }
      if (!queue_.empty()) {
        next = &queue_.front();
      } else {
        writing_ = false;
        if ((closing_ || broken_) && !finished_) finish = finished_ = true;
        if (broken_) final_status_ = grpc::Status::CANCELLED;
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(final_status_);
  }

  void OnCancel() override {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      broken_ = true;
      if (!writing_ && !finished_) finish = finished_ = true;
    }
    if (finish) Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override { self_.reset(); }

 private:
  WatchReactor() = default;

  std::shared_ptr<WatchReactor> self_;  // until OnDone
  absl::Mutex mu_;
  std::deque<v1::JobEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_;  // set before finished_, read after
};

}  // namespace

#define RAYLIGHT_JOBS_METHOD(Method, Request, Response, Call)                                   \
  grpc::ServerUnaryReactor* JobService::Method(grpc::CallbackServerContext* context,            \
                                               const Request* request, Response* response) {    \
    return PostToIo(                                                                            \
        io_, auth_, context, "Jobs." #Method, response,                                         \
        [this, request](Reply<Response> reply) { manager_.Call(*request, std::move(reply)); }); \
  }

RAYLIGHT_JOBS_METHOD(SubmitJob, v1::SubmitJobRequest, v1::JobInfo, Submit)
RAYLIGHT_JOBS_METHOD(GetJob, v1::GetJobRequest, v1::JobInfo, Get)
RAYLIGHT_JOBS_METHOD(ListJobs, v1::ListJobsRequest, v1::ListJobsResponse, List)
RAYLIGHT_JOBS_METHOD(CancelJob, v1::CancelJobRequest, v1::JobInfo, Cancel)
RAYLIGHT_JOBS_METHOD(GetJobResult, v1::GetJobResultRequest, v1::JobResult, Result)
RAYLIGHT_JOBS_METHOD(DescribeJobKind, v1::DescribeJobKindRequest, v1::JobKindDescription, Describe)
#undef RAYLIGHT_JOBS_METHOD

grpc::ServerWriteReactor<v1::JobEvent>* JobService::WatchJob(grpc::CallbackServerContext* context,
                                                             const v1::WatchJobRequest* request) {
  std::shared_ptr<WatchReactor> reactor = WatchReactor::Create();
  if (grpc::Status denied = auth_.Check(*context, "Jobs.WatchJob"); !denied.ok()) {
    reactor->Close(rpc::FromGrpc(denied));
    return reactor.get();
  }
  boost::asio::post(
      io_, [this, job_id = request->job_id(), reactor] { manager_.Watch(job_id, reactor); });
  return reactor.get();
}

}  // namespace raylight::head
