// DiffusionActor: the actor every GPU worker (and, without GPUs, every CPU worker) hosts for
// sampling jobs. The protobuf side: it converts raylight.v1 messages to the plain types of
// diffusion_types.h and hands them to the DiffusionEngine (the torch side).
//
// Methods (raylight.v1 messages, diffusion.proto):
//   sample        SampleCall -> SampleResult         SPMD on a group; rank 0 streams
//                                                    SampleProgress events and returns the latent
//   load_model    LoadModelCall -> LoadModelResult   SPMD on a group; a second load is a no-op
//   unload_model  UnloadModelRequest -> UnloadModelResponse
//   list_models   ListModelsRequest -> ListModelsResponse
#pragma once

#include <memory>

#include "actors/diffusion/diffusion_engine.h"
#include "raylight/v1/diffusion.pb.h"
#include "runtime/worker/actor_class.h"
#include "runtime/worker/actor_registry.h"

namespace raylight::actors {

inline constexpr char kDiffusionActorClass[] = "DiffusionActor";

class DiffusionActor final : public worker::MethodTable<DiffusionActor> {
 public:
  explicit DiffusionActor(const worker::ActorEnvironment& environment);

  void OnGroupLeft(const worker::GroupContext& group) override;
  void AbortGroupCall(const worker::GroupContext& group, const absl::Status& why) override;

  absl::StatusOr<v1::SampleResult> Sample(const v1::SampleCall& call, worker::CallContext& context);
  absl::StatusOr<v1::LoadModelResult> LoadModel(const v1::LoadModelCall& call,
                                                worker::CallContext& context);
  absl::StatusOr<v1::UnloadModelResponse> UnloadModel(const v1::UnloadModelRequest& request,
                                                      worker::CallContext& context);
  absl::StatusOr<v1::ListModelsResponse> ListModels(const v1::ListModelsRequest& request,
                                                    worker::CallContext& context);

 private:
  DiffusionEngine engine_;
  const std::vector<std::string> model_roots_;  // the worker's: every named file must be inside
};

void RegisterDiffusionActor(worker::ActorRegistry& registry);

}  // namespace raylight::actors
