// The shape of a sampling job's device mesh and its validation, torch-free (the head checks a
// job's mesh before queueing it). mesh.h builds the communicators for a planned shape.
//
// Ulysses varies fastest, so a Ulysses group (the most traffic: four all-to-alls per attention) is
// consecutive ranks, which the scheduler places on one machine's NVLink; then ring, then cfg (one
// exchange per step), then data (one gather at the end).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::parallel {

struct MeshShape {
  int dp = 1;
  int cfg = 1;
  int ring = 1;
  int ulysses = 1;

  int world() const { return dp * cfg * ring * ulysses; }
  std::string ToString() const;  // "dp=1 cfg=2 ring=1 ulysses=2"
};

// "dp=2,cfg=1,ring=2,ulysses=2" (any order; omitted axes are 1).
absl::StatusOr<MeshShape> ParseMeshShape(const std::string& text);

struct MeshCoords {
  int dp = 0;
  int cfg = 0;
  int ring = 0;
  int ulysses = 0;
};
MeshCoords CoordsOf(const MeshShape& shape, int rank);
int RankOf(const MeshShape& shape, const MeshCoords& coords);

// The Ulysses degrees a model with `heads` attention heads allows on up to 8 GPUs.
std::vector<int> ValidUlyssesDegrees(int heads);

struct MeshPlan {
  MeshShape shape;
  // Whether cond and uncond really run on different ranks: false when cfg = 1 leaves nothing to
  // split (the cfg axis then computes the same thing twice; `notes` says so).
  bool split_cfg = false;
  std::vector<std::string> notes;
};

// Checks `shape` for a group of `world_size` ranks running a model with `heads` heads at CFG
// scale `cfg_scale`: positive degrees, their product equal to the world, cfg degree 1 or 2,
// heads divisible by the Ulysses degree (the error lists the valid degrees).
absl::StatusOr<MeshPlan> PlanMesh(const MeshShape& shape, int world_size, int heads,
                                  double cfg_scale);

}  // namespace raylight::parallel
