// A job's mesh as the wire has it (raylight.v1.MeshSpec, 0 meaning "not split") to the shape the
// planner and the engine use. Shared by the head's job kinds and the actor's protobuf side.
#pragma once

#include "models/parallel/mesh_plan.h"
#include "raylight/v1/diffusion.pb.h"

namespace raylight::actors {

inline parallel::MeshShape MeshShapeOf(const v1::MeshSpec& mesh) {
  auto degree = [](int value) { return value > 0 ? value : 1; };
  return {degree(mesh.dp()), degree(mesh.cfg()), degree(mesh.ring()), degree(mesh.ulysses())};
}

}  // namespace raylight::actors
