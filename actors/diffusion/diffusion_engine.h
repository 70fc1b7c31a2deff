// DiffusionEngine: the torch side of the DiffusionActor — the worker's model cache and the SPMD
// sampling run of one rank. Models stay loaded between jobs (keyed by files, dtype, placement and,
// for FSDP, the group whose ranks hold the other shards); under device-memory pressure the least
// recently used ones are unloaded and the allocator's cache emptied. The worker process is never
// killed to free memory.
//
// One communicator per group membership, created at the group's first job (or load) and kept
// until the group is left; a mesh (its axis communicators) per shape, built once per membership.
//
// Not thread-safe: the worker's executor calls it from one thread, except AbortGroup.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "actors/diffusion/diffusion_types.h"
#include "runtime/worker/actor.h"

namespace raylight::actors {

class DiffusionEngine {
 public:
  explicit DiffusionEngine(const worker::ActorEnvironment& environment);
  ~DiffusionEngine();
  DiffusionEngine(const DiffusionEngine&) = delete;
  DiffusionEngine& operator=(const DiffusionEngine&) = delete;

  // Loads (or finds loaded) the model for a job on `group` (FSDP shards over it), and sets up
  // the group's communicators for `mesh`, so that the next job on them starts at its first step.
  absl::StatusOr<LoadOutcome> Load(const ModelRequest& model, const parallel::MeshShape& mesh,
                                   const worker::GroupContext& group);
  // This rank's part of a sampling job; rank 0's outcome carries the result.
  absl::StatusOr<SampleOutcome> Sample(const SampleRequest& request,
                                       const worker::GroupContext& group, const UpdateFn& update,
                                       const CancelledFn& cancelled);
  std::vector<ModelSummary> List() const;
  // Unloads the models whose first file is `path` (every model when empty).
  std::vector<ModelSummary> Unload(const std::string& path);
  // Drops the group's communicators and the models sharded over it.
  void GroupLeft(const std::string& group_id);
  // From another thread while a call on `group` runs: its communicators and rendezvous fail now
  // (a rank was lost); the membership is not used again (the head forms the group anew).
  void AbortGroup(const worker::GroupContext& group, const absl::Status& why);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raylight::actors
