#include "client/sdk/client.h"

#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/common/ids.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::client {
namespace {

// The worker says the actor is not (or no longer) there: the call did not run.
bool IsStaleAddress(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition &&
         absl::StrContains(status.message(), "stale address");
}

absl::Status NotAlive(const v1::ActorInfo& info) {
  const std::string state = v1::ActorState_Name(info.state());
  const std::string text =
      absl::StrCat("actor ", info.spec().actor_id(),
                   info.spec().name().empty() ? "" : " (" + info.spec().name() + ")", " is ", state,
                   info.death_reason().empty() ? "" : ": " + info.death_reason());
  if (info.state() == v1::DEAD) return absl::FailedPreconditionError(text);
  return absl::UnavailableError(text);
}

// The connection was refused: the call never left this process, so it is safe to send again
// to wherever the actor lives now.
bool NeverConnected(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         (absl::StrContains(status.message(), "failed to connect") ||
          absl::StrContains(status.message(), "Connection refused"));
}

}  // namespace

// ---- Client ---------------------------------------------------------------------------------

Client::Client(ClientOptions options, rpc::TlsMaterial tls)
    : options_(std::move(options)),
      token_(options_.token),
      tls_(std::move(tls)),
      head_(v1::Head::NewStub(
          rpc::MakeChannel(options_.address, tls_, options_.dedicated_channels))) {}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError(
        "address: the head's host:port is required (RAYLIGHT_ADDRESS)");
  }
  auto tls = rpc::LoadClientTls(options.tls_ca);
  if (!tls.ok()) return tls.status();
  return std::unique_ptr<Client>(new Client(std::move(options), *std::move(tls)));
}

void Client::Prepare(grpc::ClientContext& context, absl::Duration timeout) const {
  if (timeout == absl::ZeroDuration()) timeout = options_.rpc_timeout;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  token_.Attach(context);
}

std::shared_ptr<v1::Worker::Stub> Client::WorkerStub(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = workers_[address];
  if (stub == nullptr) {
    stub = v1::Worker::NewStub(rpc::MakeChannel(address, tls_, options_.dedicated_channels));
  }
  return stub;
}

absl::StatusOr<v1::ClusterState> Client::ClusterState() {
  grpc::Status status;
  for (int attempt = 0; attempt < 2; ++attempt) {  // idempotent: once more after a reset
    grpc::ClientContext context;
    Prepare(context);
    v1::ClusterState state;
    status = head_->GetClusterState(&context, v1::GetClusterStateRequest(), &state);
    if (status.ok()) return state;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  return rpc::FromGrpc(status);
}

absl::StatusOr<v1::ClusterState> Client::WaitCluster(int min_nodes, int min_workers,
                                                     absl::Duration timeout) {
  // Idempotent: a head that is restarting (connection reset) is asked again until the deadline.
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    auto state = WaitClusterOnce(min_nodes, min_workers,
                                 std::max(deadline - absl::Now(), absl::Milliseconds(1)));
    if (state.ok() || state.status().code() != absl::StatusCode::kUnavailable ||
        absl::Now() >= deadline) {
      return state;
    }
  }
}

absl::StatusOr<v1::ClusterState> Client::WaitClusterOnce(int min_nodes, int min_workers,
                                                         absl::Duration timeout) {
  grpc::ClientContext context;
  Prepare(context, timeout + absl::Seconds(10));
  context.set_wait_for_ready(true);  // the head may still be starting
  v1::WaitClusterRequest request;
  request.set_min_nodes(min_nodes);
  request.set_min_workers(min_workers);
  request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  v1::ClusterState state;
  grpc::Status status = head_->WaitCluster(&context, request, &state);
  if (!status.ok()) return rpc::FromGrpc(status);
  return state;
}

absl::StatusOr<std::unique_ptr<ActorHandle>> Client::CreateActor(const v1::ActorSpec& spec,
                                                                 absl::Duration wait_alive) {
  grpc::ClientContext context;
  Prepare(context, wait_alive + options_.rpc_timeout);
  v1::CreateActorRequest request;
  *request.mutable_spec() = spec;
  request.set_wait_alive_ms(absl::ToInt64Milliseconds(wait_alive));
  v1::ActorInfo info;
  grpc::Status status = head_->CreateActor(&context, request, &info);
  if (!status.ok()) return rpc::FromGrpc(status);
  if (info.state() == v1::DEAD) return NotAlive(info);
  return std::make_unique<ActorHandle>(*this, info.spec().actor_id());
}

absl::StatusOr<v1::ActorInfo> Client::GetActorInfo(const std::string& actor_id,
                                                   const std::string& name,
                                                   absl::Duration wait_alive) {
  grpc::ClientContext context;
  Prepare(context, wait_alive + options_.rpc_timeout);
  v1::GetActorRequest request;
  request.set_actor_id(actor_id);
  request.set_name(name);
  request.set_wait_alive_ms(absl::ToInt64Milliseconds(wait_alive));
  v1::ActorInfo info;
  grpc::Status status = head_->GetActor(&context, request, &info);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    grpc::ClientContext retry;  // idempotent: once more after a connection reset
    Prepare(retry, wait_alive + options_.rpc_timeout);
    status = head_->GetActor(&retry, request, &info);
  }
  if (!status.ok()) return rpc::FromGrpc(status);
  return info;
}

absl::StatusOr<std::unique_ptr<ActorHandle>> Client::GetActor(const std::string& name) {
  auto info = GetActorInfo("", name);
  if (!info.ok()) return info.status();
  return std::make_unique<ActorHandle>(*this, info->spec().actor_id());
}

absl::Status Client::KillActor(const std::string& actor_id, bool no_restart) {
  grpc::ClientContext context;
  Prepare(context);
  v1::KillActorRequest request;
  request.set_actor_id(actor_id);
  request.set_no_restart(no_restart);
  v1::KillActorResponse response;
  return rpc::FromGrpc(head_->KillActor(&context, request, &response));
}

absl::StatusOr<std::unique_ptr<GroupHandle>> Client::CreateGroup(const v1::GroupSpec& spec,
                                                                 absl::Duration timeout) {
  grpc::ClientContext context;
  Prepare(context,
          (timeout == absl::ZeroDuration() ? absl::Minutes(2) : timeout) + options_.rpc_timeout);
  v1::CreateGroupRequest request;
  *request.mutable_spec() = spec;
  request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  v1::GroupInfo info;
  grpc::Status status = head_->CreateGroup(&context, request, &info);
  if (!status.ok()) return rpc::FromGrpc(status);
  return std::make_unique<GroupHandle>(*this, std::move(info));
}

absl::StatusOr<v1::GroupInfo> Client::GetGroup(const std::string& name) {
  grpc::ClientContext context;
  Prepare(context);
  v1::GetGroupRequest request;
  request.set_name(name);
  v1::GroupInfo info;
  grpc::Status status = head_->GetGroup(&context, request, &info);
  if (!status.ok()) return rpc::FromGrpc(status);
  return info;
}

absl::Status Client::RemoveGroup(const std::string& name) {
  grpc::ClientContext context;
  Prepare(context);
  v1::RemoveGroupRequest request;
  request.set_name(name);
  v1::RemoveGroupResponse response;
  return rpc::FromGrpc(head_->RemoveGroup(&context, request, &response));
}

// ---- ActorHandle ----------------------------------------------------------------------------

ActorHandle::ActorHandle(Client& client, std::string actor_id)
    : client_(client), actor_id_(std::move(actor_id)), caller_id_(RandomId("caller-")) {}

absl::StatusOr<ActorHandle::Target> ActorHandle::CurrentTarget() {
  {
    absl::MutexLock lock(&mu_);
    if (target_.has_value()) return *target_;
  }
  auto info = client_.GetActorInfo(actor_id_, "", client_.options().resolve_timeout);
  if (!info.ok()) return info.status();
  if (info->state() != v1::ALIVE) return NotAlive(*info);
  Target target{client_.WorkerStub(info->address()), info->incarnation()};
  absl::MutexLock lock(&mu_);
  if (!target_.has_value() || target_->incarnation != target.incarnation) {
    // Calls are numbered per actor incarnation: a restarted actor expects seq 1 first.
    if (!target_.has_value() || target_->incarnation < target.incarnation) next_seq_ = 1;
    target_ = target;
  }
  return *target_;
}

void ActorHandle::Invalidate(int64_t incarnation) {
  absl::MutexLock lock(&mu_);
  if (target_.has_value() && target_->incarnation == incarnation) target_.reset();
}

v1::CallHeader ActorHandle::NextHeader(const std::string& method, const Target& target) {
  v1::CallHeader header;
  header.set_actor_id(actor_id_);
  header.set_method(method);
  header.set_caller_id(caller_id_);
  absl::MutexLock lock(&mu_);
  header.set_seq(next_seq_++);
  return header;
}

absl::Status ActorHandle::Resolve() { return CurrentTarget().status(); }

absl::StatusOr<std::string> ActorHandle::Call(const std::string& method, const std::string& args,
                                              const CallOptions& options) {
  const absl::Duration timeout =
      options.timeout == absl::ZeroDuration() ? client_.options().call_timeout : options.timeout;
  // At most one retry, and only when the worker proved the call did not run there.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto target = CurrentTarget();
    if (!target.ok()) return target.status();
    v1::CallHeader header = NextHeader(method, *target);
    auto result =
        rpc::CallActorOnce(*target->stub, client_.token(), header, args, timeout, options.on_event);
    if (result.ok()) return result;
    const absl::Status& status = result.status();
    if (IsStaleAddress(status) || NeverConnected(status)) {
      Invalidate(target->incarnation);
      continue;
    }
    if (status.code() == absl::StatusCode::kUnavailable) {
      // The worker went away mid-call: the call may or may not have run, so it is not retried;
      // the next call finds the actor wherever it restarted.
      Invalidate(target->incarnation);
      return absl::UnavailableError(
          absl::StrCat("actor ", actor_id_, ": its worker is unreachable: ", status.message()));
    }
    return status;
  }
  return absl::UnavailableError(absl::StrCat("actor ", actor_id_, " keeps moving; try again"));
}

void ActorHandle::CallAsync(const std::string& method, std::string args,
                            std::function<void(absl::StatusOr<std::string>)> done) {
  auto target = CurrentTarget();
  if (!target.ok()) {
    done(target.status());
    return;
  }
  struct Pending {
    grpc::ClientContext context;
    v1::CallRequest request;
    v1::CallResponse response;
  };
  auto pending = std::make_shared<Pending>();
  client_.Prepare(pending->context, client_.options().call_timeout);
  *pending->request.mutable_header() = NextHeader(method, *target);
  pending->request.set_args(std::move(args));
  auto stub = target->stub;
  stub->async()->Call(&pending->context, &pending->request, &pending->response,
                      [pending, stub, done = std::move(done)](grpc::Status status) {
                        if (!status.ok()) {
                          done(rpc::FromGrpc(status));
                          return;
                        }
                        done(std::move(*pending->response.mutable_result()));
                      });
}

// ---- GroupHandle ----------------------------------------------------------------------------

absl::StatusOr<std::string> GroupHandle::Call(const std::string& method, const std::string& args,
                                              const CallOptions& options) {
  const absl::Duration timeout =
      options.timeout == absl::ZeroDuration() ? client_.options().call_timeout : options.timeout;
  const int size = info_.members_size();
  std::vector<absl::StatusOr<std::string>> results(size, absl::UnknownError("not run"));
  auto run_rank = [&](int rank) {
    const v1::GroupMember& member = info_.members(rank);
    v1::CallHeader header;
    header.set_actor_id(member.actor_id());
    header.set_method(method);
    header.set_group_id(info_.group_id());
    header.set_group_incarnation(info_.incarnation());
    // Unordered (seq 0): every group call is a single SPMD step.
    results[rank] =
        rpc::CallActorOnce(*client_.WorkerStub(member.address()), client_.token(), header, args,
                           timeout, rank == 0 ? options.on_event : rpc::EventCallback());
  };
  std::vector<std::thread> others;
  for (int rank = 1; rank < size; ++rank) others.emplace_back(run_rank, rank);
  run_rank(0);
  for (auto& thread : others) thread.join();
  for (int rank = 0; rank < size; ++rank) {
    if (!results[rank].ok()) {
      return absl::Status(results[rank].status().code(),
                          absl::StrCat("group ", info_.spec().name(), " rank ", rank, ": ",
                                       results[rank].status().message()));
    }
  }
  return std::move(results[0]);
}

}  // namespace raylight::client
