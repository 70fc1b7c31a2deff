// The job half of the C++ client SDK: submit work to the head's durable queue, watch its
// progress, fetch results, cancel; and see or drop the models the workers keep loaded.
//
//   auto jobs = raylight::client::JobClient::Connect({.address = "127.0.0.1:6380"});
//   auto job = (*jobs)->SubmitSample(sample);               // validated, then queued
//   auto done = (*jobs)->Watch(job->job_id(), [](const v1::JobEvent& e) { ... });
//   auto result = (*jobs)->SampleResult(job->job_id());     // the latent and the last preview
//
// Every head RPC is retried with backoff while the head is UNAVAILABLE (restarting), up to the
// client's resolve_timeout; submits carry a request id, so a retried submit never queues a job
// twice. Watch re-subscribes after a lost stream and returns when the job has ended.
// Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/sdk/client.h"
#include "raylight/v1/diffusion.pb.h"
#include "raylight/v1/jobs.grpc.pb.h"

namespace raylight::client {

using JobEventCallback = std::function<void(const v1::JobEvent& event)>;

// The models one worker's DiffusionActor holds.
struct WorkerModels {
  v1::ActorInfo actor;
  std::vector<v1::ModelInfo> models;
};

class JobClient {
 public:
  static absl::StatusOr<std::unique_ptr<JobClient>> Connect(ClientOptions options);

  absl::StatusOr<v1::JobInfo> Submit(const v1::JobSpec& spec);
  absl::StatusOr<v1::JobInfo> SubmitSample(const v1::SampleJob& job, int priority = 0);
  // Loads a model on a group shaped by job.mesh (later jobs on that model find it resident).
  absl::StatusOr<v1::JobInfo> SubmitLoad(const v1::SampleJob& job);
  absl::StatusOr<v1::JobInfo> Get(const std::string& job_id);
  // Newest first; `states` empty: every state; `limit` 0: all.
  absl::StatusOr<std::vector<v1::JobInfo>> List(const std::vector<v1::JobState>& states = {},
                                                int limit = 0);
  absl::StatusOr<v1::JobInfo> Cancel(const std::string& job_id);
  // Calls `on_event` with every event until the job ends (SUCCEEDED, FAILED, CANCELLED); returns
  // its final state. DEADLINE_EXCEEDED after `timeout`.
  absl::StatusOr<v1::JobInfo> Watch(const std::string& job_id, const JobEventCallback& on_event,
                                    absl::Duration timeout = absl::InfiniteDuration());
  absl::StatusOr<v1::JobInfo> Wait(const std::string& job_id,
                                   absl::Duration timeout = absl::InfiniteDuration()) {
    return Watch(job_id, nullptr, timeout);
  }
  // The job's result bytes (FAILED_PRECONDITION until it SUCCEEDED).
  absl::StatusOr<std::string> Result(const std::string& job_id);
  absl::StatusOr<v1::SampleResult> SampleResult(const std::string& job_id);

  // What diffusion.sample offers: the models in the head's roots, samplers, schedulers, ...
  absl::StatusOr<v1::SampleKindDescription> DescribeSampling();

  // Every live DiffusionActor's models.
  absl::StatusOr<std::vector<WorkerModels>> ListModels();
  // Unloads the model whose first file is `path` (all models when empty) on every worker.
  absl::StatusOr<std::vector<v1::ModelInfo>> UnloadModels(const std::string& path);

  Client& client() { return *client_; }

 private:
  explicit JobClient(std::unique_ptr<Client> client);
  // Runs `rpc` (a fresh context each try) until it is not UNAVAILABLE or resolve_timeout passed.
  template <typename Response>
  absl::StatusOr<Response> Retrying(
      const std::function<grpc::Status(grpc::ClientContext&, Response&)>& rpc);

  std::unique_ptr<Client> client_;
  std::unique_ptr<v1::Jobs::Stub> jobs_;
};

}  // namespace raylight::client
