// The head's diffusion job kinds (runtime/head/job_kind.h), torch-free: they validate a
// raylight.v1.SampleJob from file headers and bounds alone, then plan it as a DiffusionActor
// group call.
//
//   "diffusion.sample"  SampleJob -> SampleCall on every rank ("sample"); result: SampleResult
//   "diffusion.load"    SampleJob (model, dtype, placement, mesh) -> LoadModelCall
//                       ("load_model"); result: LoadModelResult. Later jobs with the same model
//                       prefer that group.
//
// Checked before anything is queued, every error naming its field: the model resolves inside a
// model root (no "..", no symlink out) and is a Wan checkpoint; the conditioning files parse and
// fit the model; sizes, frames, steps and the token count are bounded; the sampler and scheduler
// exist; the mesh is valid for the model's heads and the cluster has the workers for it.
#pragma once

#include <string>
#include <vector>

#include "actors/diffusion/model_roots.h"
#include "runtime/head/job_kind.h"

namespace raylight::actors {

inline constexpr char kSampleJobKind[] = "diffusion.sample";
inline constexpr char kLoadJobKind[] = "diffusion.load";

// Bounds on a job, checked before its memory is allocated anywhere.
struct SampleLimits {
  int max_steps = 1000;
  int max_side = 4096;  // pixels
  int max_frames = 1025;
  int64_t max_tokens = 1 << 20;  // latent tokens after patching
};

void RegisterDiffusionJobKinds(head::JobKinds& kinds, std::vector<std::string> model_roots,
                               SampleLimits limits = {});

}  // namespace raylight::actors
