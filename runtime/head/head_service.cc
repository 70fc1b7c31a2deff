#include "runtime/head/head_service.h"

#include <boost/asio/post.hpp>

#include "runtime/head/post_reply.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::head {

#define RAYLIGHT_HEAD_METHOD(Method, Request, Response)                                           \
  grpc::ServerUnaryReactor* HeadService::Method(grpc::CallbackServerContext* context,             \
                                                const Request* request, Response* response) {     \
    return PostToIo(                                                                              \
        io_, auth_, context, "Head." #Method, response,                                           \
        [this, request](Reply<Response> reply) { manager_.Method(*request, std::move(reply)); }); \
  }

RAYLIGHT_HEAD_METHOD(RegisterNode, v1::RegisterNodeRequest, v1::RegisterNodeResponse)
RAYLIGHT_HEAD_METHOD(NodeHeartbeat, v1::NodeHeartbeatRequest, v1::HeartbeatResponse)
RAYLIGHT_HEAD_METHOD(RegisterWorker, v1::RegisterWorkerRequest, v1::RegisterWorkerResponse)
RAYLIGHT_HEAD_METHOD(WorkerHeartbeat, v1::WorkerHeartbeatRequest, v1::HeartbeatResponse)
RAYLIGHT_HEAD_METHOD(ReportWorkerExit, v1::ReportWorkerExitRequest, v1::ReportWorkerExitResponse)
RAYLIGHT_HEAD_METHOD(CreateActor, v1::CreateActorRequest, v1::ActorInfo)
RAYLIGHT_HEAD_METHOD(GetActor, v1::GetActorRequest, v1::ActorInfo)
RAYLIGHT_HEAD_METHOD(KillActor, v1::KillActorRequest, v1::KillActorResponse)
RAYLIGHT_HEAD_METHOD(CreateGroup, v1::CreateGroupRequest, v1::GroupInfo)
RAYLIGHT_HEAD_METHOD(GetGroup, v1::GetGroupRequest, v1::GroupInfo)
RAYLIGHT_HEAD_METHOD(RemoveGroup, v1::RemoveGroupRequest, v1::RemoveGroupResponse)
RAYLIGHT_HEAD_METHOD(WaitCluster, v1::WaitClusterRequest, v1::ClusterState)
#undef RAYLIGHT_HEAD_METHOD

grpc::ServerUnaryReactor* HeadService::GetClusterState(grpc::CallbackServerContext* context,
                                                       const v1::GetClusterStateRequest*,
                                                       v1::ClusterState* response) {
  return PostToIo(
      io_, auth_, context, "Head.GetClusterState", response,
      [this](Reply<v1::ClusterState> reply) { manager_.GetClusterState(std::move(reply)); });
}

}  // namespace raylight::head
