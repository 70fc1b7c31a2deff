// HeadService: the gRPC adapter (raylight.v1.Head, callback API) over the HeadManager. Checks the
// cluster token, then posts the request onto the manager's io thread; the reply finishes the RPC
// from there. No handler blocks a gRPC thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include "raylight/v1/head.grpc.pb.h"
#include "runtime/head/head_manager.h"
#include "runtime/rpc/auth.h"

namespace raylight::head {

class HeadService final : public v1::Head::CallbackService {
 public:
  HeadService(boost::asio::io_context& io, HeadManager& manager, rpc::ServerAuth auth)
      : io_(io), manager_(manager), auth_(std::move(auth)) {}

  grpc::ServerUnaryReactor* RegisterNode(grpc::CallbackServerContext* context,
                                         const v1::RegisterNodeRequest* request,
                                         v1::RegisterNodeResponse* response) override;
  grpc::ServerUnaryReactor* NodeHeartbeat(grpc::CallbackServerContext* context,
                                          const v1::NodeHeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* context,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* WorkerHeartbeat(grpc::CallbackServerContext* context,
                                            const v1::WorkerHeartbeatRequest* request,
                                            v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportWorkerExit(grpc::CallbackServerContext* context,
                                             const v1::ReportWorkerExitRequest* request,
                                             v1::ReportWorkerExitResponse* response) override;
  grpc::ServerUnaryReactor* CreateActor(grpc::CallbackServerContext* context,
                                        const v1::CreateActorRequest* request,
                                        v1::ActorInfo* response) override;
  grpc::ServerUnaryReactor* GetActor(grpc::CallbackServerContext* context,
                                     const v1::GetActorRequest* request,
                                     v1::ActorInfo* response) override;
  grpc::ServerUnaryReactor* KillActor(grpc::CallbackServerContext* context,
                                      const v1::KillActorRequest* request,
                                      v1::KillActorResponse* response) override;
  grpc::ServerUnaryReactor* CreateGroup(grpc::CallbackServerContext* context,
                                        const v1::CreateGroupRequest* request,
                                        v1::GroupInfo* response) override;
  grpc::ServerUnaryReactor* GetGroup(grpc::CallbackServerContext* context,
                                     const v1::GetGroupRequest* request,
                                     v1::GroupInfo* response) override;
  grpc::ServerUnaryReactor* RemoveGroup(grpc::CallbackServerContext* context,
                                        const v1::RemoveGroupRequest* request,
                                        v1::RemoveGroupResponse* response) override;
  grpc::ServerUnaryReactor* GetClusterState(grpc::CallbackServerContext* context,
                                            const v1::GetClusterStateRequest* request,
                                            v1::ClusterState* response) override;
  grpc::ServerUnaryReactor* WaitCluster(grpc::CallbackServerContext* context,
                                        const v1::WaitClusterRequest* request,
                                        v1::ClusterState* response) override;

 private:
  boost::asio::io_context& io_;
  HeadManager& manager_;
  const rpc::ServerAuth auth_;
};

}  // namespace raylight::head
