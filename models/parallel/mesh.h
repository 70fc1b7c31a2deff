// The device mesh of one sampling job: data x cfg x ring x ulysses = the group's world size
// (DESIGN.md, "Compute"). Ulysses varies fastest, so a Ulysses group (the most traffic: four
// all-to-alls per attention) is consecutive ranks, which the scheduler places on one machine's
// NVLink; then ring, then cfg (one exchange per step), then data (one gather at the end).
//
// PlanMesh validates a shape before any work starts (every error names the field); BuildMesh then
// splits the group's communicator into one communicator per axis (collective).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/parallel_context.h"
#include "models/parallel/comm/communicator.h"
#include "models/parallel/mesh_plan.h"

namespace raylight::parallel {

// One rank's view of the mesh: its coordinates and a communicator per axis of degree > 1.
class Mesh {
 public:
  // Collective over `world` (every rank calls it with the same shape).
  static absl::StatusOr<std::unique_ptr<Mesh>> Build(comm::Communicator& world,
                                                     const MeshShape& shape);

  const MeshShape& shape() const { return shape_; }
  const MeshCoords& coords() const { return coords_; }
  // The sequence-parallel context for the model forward.
  models::ParallelContext sequence_context() const;
  comm::Communicator* cfg() const { return cfg_.get(); }  // null when cfg degree is 1
  comm::Communicator* dp() const { return dp_.get(); }    // null when dp degree is 1

 private:
  MeshShape shape_;
  MeshCoords coords_;
  std::unique_ptr<comm::Communicator> ulysses_, ring_, sequence_, cfg_, dp_;
};

}  // namespace raylight::parallel
