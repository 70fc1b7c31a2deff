// Sampling on one rank of a device mesh (models/parallel/mesh.h). Every rank runs the same
// sampler loop with the same sigmas and the same initial noise; only the model evaluation is
// split: the sequence axes inside the ModelFn (its forward gets the mesh's ParallelContext), the
// cfg axis here (cond on cfg rank 0, uncond on cfg rank 1, the two predictions exchanged every
// evaluation and combined identically on both), the data axis by seed (seed + dp rank, or
// seeds[dp rank]), each dp rank's result gathered at the end.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "models/parallel/mesh.h"
#include "samplers/ksampler.h"

namespace raylight::samplers {

// CFG with cond and uncond on the two ranks of `group` (rank 0: cond). Both ranks return the
// same combined estimate, bit for bit; cfg == 1 evaluates cond on both without an exchange.
// Both ranks hold both raw outputs after the exchange, so an EasyCache `cache` decides the same
// on both.
Denoiser CfgParallelDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                             comm::Communicator& group, std::shared_ptr<EasyCache> cache = nullptr);

// The denoiser one rank of `mesh` runs: CFG split over the cfg axis when the plan splits it,
// otherwise CfgDenoiser, with cond and uncond in one batch when `batch_cfg` says so or, unset,
// when the mesh runs Ulysses (whose forward interleaves the two halves).
Denoiser MeshDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                      const parallel::Mesh& mesh, const parallel::MeshPlan& plan,
                      std::optional<bool> batch_cfg = std::nullopt,
                      std::shared_ptr<EasyCache> cache = nullptr);

// The branch of this rank's first model call under MeshDenoiser (the batch every computed call
// of the run has): kBoth where cond and uncond run as one batch, kUncond on the cfg axis' second
// rank, else kCond. A warm-up at the job's shape calls the model with it.
Branch FirstCallBranch(double cfg, const parallel::Mesh& mesh, const parallel::MeshPlan& plan,
                       std::optional<bool> batch_cfg = std::nullopt);

// Returns every dp rank's result stacked along a new first dimension [dp, ...], on every rank.
// `seeds`: empty (seed + dp rank) or one per dp rank.
absl::StatusOr<at::Tensor> KSampleOnMesh(const ModelFn& model, const ModelSampling& sampling,
                                         const at::Tensor& latent, KSamplerOptions options,
                                         const parallel::Mesh& mesh, const parallel::MeshPlan& plan,
                                         const std::vector<uint64_t>& seeds = {},
                                         const StepCallback& callback = nullptr);

}  // namespace raylight::samplers
