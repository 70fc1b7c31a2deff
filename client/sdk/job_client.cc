#include "client/sdk/job_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "runtime/common/ids.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::client {
namespace {

constexpr char kDiffusionActorClass[] = "DiffusionActor";

bool Ended(v1::JobState state) {
  return state == v1::JOB_SUCCEEDED || state == v1::JOB_FAILED || state == v1::JOB_CANCELLED;
}

}  // namespace

JobClient::JobClient(std::unique_ptr<Client> client)
    : client_(std::move(client)),
      jobs_(v1::Jobs::NewStub(rpc::MakeChannel(client_->options().address, client_->tls(),
                                               client_->options().dedicated_channels))) {}

absl::StatusOr<std::unique_ptr<JobClient>> JobClient::Connect(ClientOptions options) {
  auto client = Client::Connect(std::move(options));
  if (!client.ok()) return client.status();
  return std::unique_ptr<JobClient>(new JobClient(*std::move(client)));
}

template <typename Response>
absl::StatusOr<Response> JobClient::Retrying(
    const std::function<grpc::Status(grpc::ClientContext&, Response&)>& rpc) {
  const absl::Time give_up = absl::Now() + client_->options().resolve_timeout;
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    grpc::ClientContext context;
    client_->Prepare(context);
    Response response;
    grpc::Status status = rpc(context, response);
    if (status.ok()) return response;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() + backoff > give_up) {
      return rpc::FromGrpc(status);
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::StatusOr<v1::JobInfo> JobClient::Submit(const v1::JobSpec& spec) {
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(RandomId("submit-"));  // the same for every retry of this submit
  return Retrying<v1::JobInfo>([&](grpc::ClientContext& context, v1::JobInfo& response) {
    return jobs_->SubmitJob(&context, request, &response);
  });
}

absl::StatusOr<v1::JobInfo> JobClient::SubmitSample(const v1::SampleJob& job, int priority) {
  v1::JobSpec spec;
  spec.set_kind("diffusion.sample");
  spec.set_payload(job.SerializeAsString());
  spec.set_priority(priority);
  spec.set_max_retries(-1);
  return Submit(spec);
}

absl::StatusOr<v1::JobInfo> JobClient::SubmitLoad(const v1::SampleJob& job) {
  v1::JobSpec spec;
  spec.set_kind("diffusion.load");
  spec.set_payload(job.SerializeAsString());
  spec.set_max_retries(-1);
  return Submit(spec);
}

absl::StatusOr<v1::JobInfo> JobClient::Get(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return Retrying<v1::JobInfo>([&](grpc::ClientContext& context, v1::JobInfo& response) {
    return jobs_->GetJob(&context, request, &response);
  });
}

absl::StatusOr<std::vector<v1::JobInfo>> JobClient::List(const std::vector<v1::JobState>& states,
                                                         int limit) {
  v1::ListJobsRequest request;
  for (v1::JobState state : states) request.add_states(state);
  request.set_limit(limit);
  auto response = Retrying<v1::ListJobsResponse>(
      [&](grpc::ClientContext& context, v1::ListJobsResponse& response) {
        return jobs_->ListJobs(&context, request, &response);
      });
  if (!response.ok()) return response.status();
  return std::vector<v1::JobInfo>(response->jobs().begin(), response->jobs().end());
}

absl::StatusOr<v1::JobInfo> JobClient::Cancel(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  return Retrying<v1::JobInfo>([&](grpc::ClientContext& context, v1::JobInfo& response) {
    return jobs_->CancelJob(&context, request, &response);
  });
}

absl::StatusOr<v1::JobInfo> JobClient::Watch(const std::string& job_id,
                                             const JobEventCallback& on_event,
                                             absl::Duration timeout) {
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(50);
  absl::Time unavailable_since = absl::InfiniteFuture();
  for (;;) {
    grpc::ClientContext context;
    client_->token().Attach(context);
    if (deadline != absl::InfiniteFuture()) context.set_deadline(absl::ToChronoTime(deadline));
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    auto stream = jobs_->WatchJob(&context, request);
    v1::JobEvent event;
    std::optional<v1::JobInfo> last;
    while (stream->Read(&event)) {
      unavailable_since = absl::InfiniteFuture();
      if (on_event) on_event(event);
      if (event.has_info()) last = event.info();
    }
    grpc::Status status = stream->Finish();
    if (last.has_value() && Ended(last->state())) return *last;
    if (!status.ok() && status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return rpc::FromGrpc(status);
    }
    // The stream ended early (the head restarted): watch again once it is back.
    if (unavailable_since == absl::InfiniteFuture()) unavailable_since = absl::Now();
    if (absl::Now() - unavailable_since > client_->options().resolve_timeout) {
      return absl::UnavailableError(absl::StrCat("job ", job_id, ": the head stayed unreachable"));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("job ", job_id, " did not end in time"));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

absl::StatusOr<std::string> JobClient::Result(const std::string& job_id) {
  v1::GetJobResultRequest request;
  request.set_job_id(job_id);
  auto response =
      Retrying<v1::JobResult>([&](grpc::ClientContext& context, v1::JobResult& response) {
        return jobs_->GetJobResult(&context, request, &response);
      });
  if (!response.ok()) return response.status();
  return std::move(*response->mutable_result());
}

absl::StatusOr<v1::SampleResult> JobClient::SampleResult(const std::string& job_id) {
  auto bytes = Result(job_id);
  if (!bytes.ok()) return bytes.status();
  v1::SampleResult result;
  if (!result.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("job ", job_id, ": result is not a SampleResult"));
  }
  return result;
}

absl::StatusOr<v1::SampleKindDescription> JobClient::DescribeSampling() {
  v1::DescribeJobKindRequest request;
  request.set_kind("diffusion.sample");
  auto response = Retrying<v1::JobKindDescription>(
      [&](grpc::ClientContext& context, v1::JobKindDescription& response) {
        return jobs_->DescribeJobKind(&context, request, &response);
      });
  if (!response.ok()) return response.status();
  v1::SampleKindDescription description;
  if (!description.ParseFromString(response->description())) {
    return absl::DataLossError("the head's diffusion.sample description does not parse");
  }
  return description;
}

absl::StatusOr<std::vector<WorkerModels>> JobClient::ListModels() {
  auto cluster = client_->ClusterState();
  if (!cluster.ok()) return cluster.status();
  std::vector<WorkerModels> out;
  for (const v1::ActorInfo& actor : cluster->actors()) {
    if (actor.state() != v1::ALIVE || actor.spec().class_name() != kDiffusionActorClass) continue;
    ActorHandle handle(*client_, actor.spec().actor_id());
    auto models = handle.Call<v1::ListModelsResponse>("list_models", v1::ListModelsRequest());
    if (!models.ok()) return models.status();
    out.push_back({actor, {models->models().begin(), models->models().end()}});
  }
  return out;
}

absl::StatusOr<std::vector<v1::ModelInfo>> JobClient::UnloadModels(const std::string& path) {
  auto cluster = client_->ClusterState();
  if (!cluster.ok()) return cluster.status();
  std::vector<v1::ModelInfo> unloaded;
  v1::UnloadModelRequest request;
  request.set_path(path);
  for (const v1::ActorInfo& actor : cluster->actors()) {
    if (actor.state() != v1::ALIVE || actor.spec().class_name() != kDiffusionActorClass) continue;
    ActorHandle handle(*client_, actor.spec().actor_id());
    auto response = handle.Call<v1::UnloadModelResponse>("unload_model", request);
    if (!response.ok()) return response.status();
    unloaded.insert(unloaded.end(), response->unloaded().begin(), response->unloaded().end());
  }
  return unloaded;
}

}  // namespace raylight::client
