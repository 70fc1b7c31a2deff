#include "runtime/worker/head_link.h"

#include <grpcpp/grpcpp.h>

#include "runtime/common/log.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::worker {
namespace {

constexpr absl::Duration kRpcTimeout = absl::Seconds(5);
constexpr absl::Duration kRetryMin = absl::Milliseconds(100);
constexpr absl::Duration kRetryMax = absl::Seconds(2);

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

HeadLink::HeadLink(std::shared_ptr<grpc::Channel> head, rpc::ClusterToken token,
                   std::function<v1::WorkerInfo()> info, WorkerRuntime& runtime)
    : stub_(v1::Head::NewStub(std::move(head))),
      token_(std::move(token)),
      info_(std::move(info)),
      runtime_(runtime) {}

HeadLink::~HeadLink() { Stop(); }

void HeadLink::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void HeadLink::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool HeadLink::WaitFor(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopping), duration);
  return !stopping_;
}

absl::Status HeadLink::Register() {
  v1::RegisterWorkerRequest request;
  *request.mutable_worker() = info_();
  HostedState hosted = runtime_.Snapshot();
  if (hosted.has_actor) {
    *request.mutable_hosted_actor() = hosted.actor;
    request.set_hosted_actor_incarnation(hosted.incarnation);
    for (const auto& group : hosted.groups) {
      auto* entry = request.add_hosted_groups();
      entry->set_group_id(group.group_id);
      entry->set_incarnation(group.incarnation);
      entry->set_rank(group.rank);
    }
  }
  grpc::ClientContext context;
  SetDeadline(context, kRpcTimeout);
  token_.Attach(context);
  v1::RegisterWorkerResponse response;
  grpc::Status status = stub_->RegisterWorker(&context, request, &response);
  if (!status.ok()) return rpc::FromGrpc(status);
  period_ = absl::Milliseconds(std::max<int64_t>(response.heartbeat_period_ms(), 50));
  if (hosted.has_actor && !response.keep_hosted_actor()) {
    RL_LOG(INFO) << "the head no longer wants actor " << hosted.actor.actor_id() << "; stopping it";
    runtime_.StopActor(hosted.actor.actor_id(), [](absl::Status) {});
  }
  RL_LOG(INFO) << "registered with the head as " << request.worker().worker_id() << " at "
               << request.worker().address();
  return absl::OkStatus();
}

absl::StatusOr<bool> HeadLink::Heartbeat() {
  v1::WorkerInfo info = info_();
  v1::WorkerHeartbeatRequest request;
  request.set_worker_id(info.worker_id());
  request.set_instance_id(info.instance_id());
  request.set_host_rss_bytes(info.host_rss_bytes());
  request.set_device_used_bytes(info.device_used_bytes());
  request.set_device_total_bytes(info.device_total_bytes());
  grpc::ClientContext context;
  SetDeadline(context, kRpcTimeout);
  token_.Attach(context);
  v1::HeartbeatResponse response;
  grpc::Status status = stub_->WorkerHeartbeat(&context, request, &response);
  if (!status.ok()) return rpc::FromGrpc(status);
  return response.known();
}

void HeadLink::Loop() {
  bool registered = false;
  bool reported_outage = false;
  absl::Duration retry = kRetryMin;
  while (true) {
    if (!registered) {
      absl::Status status = Register();
      if (status.ok()) {
        registered = true;
        reported_outage = false;
        retry = kRetryMin;
      } else {
        if (!reported_outage) RL_LOG(WARNING) << "cannot register with the head: " << status;
        reported_outage = true;
        if (!WaitFor(retry)) return;
        retry = std::min(retry * 2, kRetryMax);
        continue;
      }
    }
    if (!WaitFor(period_)) return;
    absl::StatusOr<bool> known = Heartbeat();
    if (!known.ok()) {
      if (!reported_outage) RL_LOG(WARNING) << "heartbeat failed: " << known.status();
      reported_outage = true;
      continue;
    }
    if (reported_outage) RL_LOG(INFO) << "the head answers again";
    reported_outage = false;
    if (!*known) {
      RL_LOG(INFO) << "the head does not know this worker (it restarted): registering again";
      registered = false;
    }
  }
}

}  // namespace raylight::worker
