// A family's sampling run (torch side): what it asks of the worker's engine (SamplingServices,
// which diffusion_engine.cc implements: the group's communicator and meshes, the model cache, the
// journal, the side models), and the helpers every run shares. Wan has a run of its own
// (wan_sampling.cc); every other family runs through conditioned_sampling.cc, which reaches it
// only through models::DiffusionModel.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "actors/diffusion/diffusion_types.h"
#include "actors/diffusion/job_inputs.h"
#include "actors/diffusion/model_call_journal.h"
#include "models/family/diffusion_model.h"
#include "models/parallel/comm/communicator.h"
#include "models/parallel/mesh.h"
#include "models/parallel/mesh_plan.h"
#include "runtime/worker/actor.h"
#include "samplers/ksampler.h"

namespace raylight::actors {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start);

// "auto" (bf16 on a GPU, fp32 on a CPU), "bf16", "f16", "f32"; an error names the field.
absl::StatusOr<at::ScalarType> ComputeDtype(const std::string& dtype, bool gpu);

// What one forward of the job holds on a rank, for the placement planner: its tokens split
// `sequence_degree` ways, `batch` samples at once (at most cond and uncond together: batched
// under Ulysses, and counted as batched whenever CFG is not split over ranks, an upper bound for
// two forwards).
struct JobShape {
  std::function<int64_t(const models::ModelInfo&)> tokens;
  int sequence_degree = 1;
  int batch = 2;
};
JobShape ShapeOf(const parallel::MeshShape& mesh, double cfg);

// A model of the job, loaded (or found loaded) by the engine's cache.
struct EnsuredModel {
  models::DiffusionModel* model = nullptr;
  const ModelSummary* summary = nullptr;
  std::string key;  // its key in the cache (what a later Ensure of the same job must keep)
  bool was_resident = false;
  double seconds = 0;  // the load's
  std::string reason;  // why this placement
};

// The job's note on its model: "model P is resident (variant, placement)", or "loaded P
// (variant, placement) in S s: G GB placed, R GB/s" (the placed bytes over the load's time).
std::string ModelNote(const EnsuredModel& model, const std::string& variant,
                      const std::string& placement);

// The first-call costs of a job's shape (GEMM and attention plans, the caching allocator growing
// to a block's activations) paid before the first step by `warm_up` (a forward through one block
// of each kind at the shape of the run's model calls: WarmUpWanForward, ConditionedForward::
// WarmUp; false: the family has none), where rank 0's `model` was not warmed at `shape` (a key
// of the calls' input shapes) since it loaded; every rank of `world` follows rank 0's word,
// since the warm-up's exchanges are collective. The first step then costs what later ones do,
// and step times (progress, ETA, step caches' savings) are the steps'.
absl::Status WarmUpAtShape(comm::Communicator& world, at::Device device,
                           models::DiffusionModel& model, const std::string& shape,
                           const std::function<absl::StatusOr<bool>()>& warm_up,
                           const std::function<void(std::string)>& note);

// The key a model remembers a warm-up by (WarmUpAtShape's `shape`): `shapes`, the calls' input
// shapes, and what else chooses the kernels whose first-call costs the warm-up pays (fp8
// attention's cuDNN graphs and their timed plans).
std::string WarmUpKey(const std::string& shapes, const SampleRequest& request);

class SamplingServices {
 public:
  virtual ~SamplingServices() = default;
  virtual at::Device device() const = 0;
  // The group's communicator (made on first use; collective with the group's other ranks).
  virtual absl::StatusOr<comm::Communicator*> World(const worker::GroupContext& group) = 0;
  // The mesh of `shape` over the group (made on first use, kept for the membership).
  virtual absl::StatusOr<parallel::Mesh*> Mesh(const parallel::MeshShape& shape,
                                               const worker::GroupContext& group) = 0;
  // The model of `request` placed for the job; `keep`: cache keys eviction must leave alone.
  virtual absl::StatusOr<EnsuredModel> Ensure(const ModelRequest& request,
                                              const worker::GroupContext& group,
                                              const JobShape& shape,
                                              std::vector<std::string> keep = {}) = 0;
  // Rank 0's journal of the job's model calls, where one is kept (null otherwise).
  virtual std::unique_ptr<ModelCallJournal> OpenJournal(const SampleRequest& request,
                                                        int rank) const = 0;
  virtual SideModels side_models() = 0;
  // What a decode may take on the device (0 on a CPU worker).
  virtual int64_t DeviceFreeBytes() const = 0;
};

// The mesh's plan for a model of `info` (heads divide the Ulysses degree, ...).
absl::StatusOr<parallel::MeshPlan> PlanFor(const parallel::MeshShape& mesh,
                                           const worker::GroupContext& group,
                                           const models::ModelInfo& info, double cfg);

// The job's sampler settings (ComfyUI's KSampler / KSamplerAdvanced / SamplerCustom inputs).
samplers::KSamplerOptions SamplerOptionsOf(const SampleRequest& request);

// Progress to the client from rank 0 (`reports`): step i of n over every run of the job (a
// two-expert job's second run continues the first's count through `steps_before` and
// `steps_in_all`, read at each step), sigma, and the preview when there is one (kept in
// `outcome` too).
samplers::StepCallback ProgressCallback(bool reports, const UpdateFn& update,
                                        SampleOutcome& outcome, const int& steps_before,
                                        const int& steps_in_all);

// The end of a run: a failure's status (a cancelled job's journal removed: it does not run again;
// an aborted or failed run may, and keeps its journal), else on rank 0 (`reports`) the LATENT:
// [dp, 1, C, ...] -> a batch of dp latents as ComfyUI stores a batch, with `noise_mask` passed on
// as ComfyUI's KSampler passes the LATENT's.
absl::Status KeepResult(const absl::StatusOr<at::Tensor>& out, ModelCallJournal* journal,
                        bool reports, const at::Tensor& noise_mask, SampleOutcome& outcome);

// A job's output decoded by its VAE (`request.output`: video, webp or frames; one frame makes a
// PNG) from the run's result `out` ([dp, 1, C, F, h, w]; an image family's [dp, 1, C, h, w]),
// collective over `world`: the file on rank 0 into `outcome`, with notes of the decode.
// `vae_kind` is the family's ModelInfo::vae ("wan2.1", "kl").
absl::Status DecodeResult(const SampleRequest& request, const at::Tensor& out,
                          comm::Communicator& world, SamplingServices& services,
                          const std::function<void(std::string)>& note, SampleOutcome& outcome,
                          const std::string& vae_kind = "wan2.1");

// A job's log line, reaching the client from rank 0.
std::function<void(std::string)> JobNotes(const SampleRequest& request, bool reports,
                                          const UpdateFn& update);

// Wan's run (prompts, images, two experts, decoded video: wan_sampling.cc) and every other
// family's (conditioning files in, a LATENT out: conditioned_sampling.cc).
absl::StatusOr<SampleOutcome> SampleWan(const SampleRequest& request,
                                        const worker::GroupContext& group, const UpdateFn& update,
                                        const CancelledFn& cancelled, SamplingServices& services);
absl::StatusOr<SampleOutcome> SampleConditioned(const SampleRequest& request,
                                                const worker::GroupContext& group,
                                                const UpdateFn& update,
                                                const CancelledFn& cancelled,
                                                SamplingServices& services);

}  // namespace raylight::actors
