// JobService: the gRPC adapter (raylight.v1.Jobs, callback API) over the JobManager. Checks the
// cluster token, then posts onto the head's io thread, as HeadService does. WatchJob is a server
// stream fed by the manager through a JobWatcher.
#pragma once

#include <boost/asio/io_context.hpp>

#include "raylight/v1/jobs.grpc.pb.h"
#include "runtime/head/job_manager.h"
#include "runtime/rpc/auth.h"

namespace raylight::head {

class JobService final : public v1::Jobs::CallbackService {
 public:
  JobService(boost::asio::io_context& io, JobManager& manager, rpc::ServerAuth auth)
      : io_(io), manager_(manager), auth_(std::move(auth)) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const v1::SubmitJobRequest* request,
                                      v1::JobInfo* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request,
                                   v1::JobInfo* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::JobInfo* response) override;
  grpc::ServerUnaryReactor* GetJobResult(grpc::CallbackServerContext* context,
                                         const v1::GetJobResultRequest* request,
                                         v1::JobResult* response) override;
  grpc::ServerUnaryReactor* DescribeJobKind(grpc::CallbackServerContext* context,
                                            const v1::DescribeJobKindRequest* request,
                                            v1::JobKindDescription* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* context,
                                                   const v1::WatchJobRequest* request) override;

 private:
  boost::asio::io_context& io_;
  JobManager& manager_;
  const rpc::ServerAuth auth_;
};

}  // namespace raylight::head
