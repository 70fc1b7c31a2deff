#include "actors/diffusion/diffusion_engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "actors/diffusion/agreed_model_calls.h"
#include "actors/diffusion/dtype_name.h"
#include "actors/diffusion/image_encoder.h"
#include "actors/diffusion/job_inputs.h"
#include "actors/diffusion/model_call_journal.h"
#include "actors/diffusion/prompt_encoder.h"
#include "actors/diffusion/root_broadcast.h"
#include "actors/diffusion/step_caches.h"
#include "actors/diffusion/video_output.h"
#include "models/core/latent_file.h"
#include "models/core/latent_format.h"
#include "models/core/sharded_weights.h"
#include "models/family/diffusion_model.h"
#include "models/flux/flux_conditioning.h"
#include "models/flux/flux_model.h"
#include "models/parallel/comm/gloo_communicator.h"
#include "models/parallel/comm/nccl_communicator.h"
#include "models/parallel/mesh.h"
#include "models/vae/video_file.h"
#include "models/wan/wan_conditioning.h"
#include "models/wan/wan_model.h"
#include "runtime/common/gpu_info.h"
#include "runtime/common/log.h"
#include "runtime/common/status_macros.h"
#include "samplers/denoise_mask.h"
#include "samplers/mesh_sample.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace raylight::actors {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Wan 2.2 A14B's expert boundaries on the shifted sigma (its official configs).
constexpr double kWan22T2vBoundary = 0.875;
constexpr double kWan22I2vBoundary = 0.900;

// Collectives of one job wait this long for a peer (a dead peer's socket closes sooner).
std::chrono::milliseconds CollectiveTimeout() {
  const char* value = std::getenv("RAYLIGHT_COLLECTIVE_TIMEOUT_MS");
  return std::chrono::milliseconds(value != nullptr ? std::atoll(value) : 300000);
}

absl::StatusOr<at::ScalarType> ComputeDtype(const std::string& dtype, bool gpu) {
  if (dtype.empty() || dtype == "auto") return gpu ? at::kBFloat16 : at::kFloat;
  if (dtype == "bf16") return at::kBFloat16;
  if (dtype == "f16") return at::kHalf;
  if (dtype == "f32") return at::kFloat;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype: unknown '", dtype, "' (auto, bf16, f16, f32)"));
}

struct LoadedModel {
  std::unique_ptr<models::DiffusionModel> model;
  ModelSummary summary;
  std::string group_key;  // FSDP: the group incarnation its shards span; empty otherwise
  std::string key;        // its key in the model cache
};

// How the placement was decided, and what it needs.
struct PlacementDecision {
  std::string name;          // resident, fsdp, fsdp-host, swap
  models::SwapOptions swap;  // swap: the device budget for blocks
  int64_t device_bytes = 0;  // the weights' expected bytes per device (0: unknown), for eviction
  std::string reason;        // the numbers behind it, for the job's log and result
};

// What one forward of the job holds on a rank: its tokens split `sequence_degree` ways, `batch`
// samples at once (at most cond and uncond together: batched under Ulysses, and counted as
// batched whenever CFG is not split over ranks, an upper bound for two forwards).
struct JobShape {
  std::function<int64_t(const models::ModelInfo&)> tokens;
  int sequence_degree = 1;
  int batch = 2;
};

JobShape ShapeOf(const parallel::MeshShape& mesh, double cfg) {
  JobShape shape;
  shape.sequence_degree = std::max(1, mesh.ulysses * mesh.ring);
  shape.batch = cfg != 1.0 && mesh.cfg < 2 ? 2 : 1;
  return shape;
}

struct Membership {
  int64_t incarnation = 0;
  std::unique_ptr<comm::Communicator> world;
  std::map<std::string, std::unique_ptr<parallel::Mesh>> meshes;  // by shape
};

// The job's sampler settings (ComfyUI's KSampler / KSamplerAdvanced / SamplerCustom inputs).
samplers::KSamplerOptions SamplerOptionsOf(const SampleRequest& request) {
  samplers::KSamplerOptions options;
  options.seed = request.seed;
  options.steps = request.steps;
  options.cfg = request.cfg;
  options.sampler = request.sampler;
  options.scheduler = request.scheduler;
  options.denoise = request.denoise > 0 ? request.denoise : 1.0;
  options.preview_every = request.preview_every;
  options.add_noise = request.add_noise;
  options.start_step = request.start_step;
  options.end_step = request.end_step;
  options.return_with_leftover_noise = request.return_with_leftover_noise;
  options.sigmas = request.sigmas;
  return options;
}

// Progress to the client from rank 0: step i of n (over every run of the job: a two-expert job's
// second run continues the first's count), sigma, and the preview when there is one.
samplers::StepCallback ProgressCallback(bool reports, const UpdateFn& update,
                                        SampleOutcome& outcome, const int& steps_before,
                                        const int& steps_in_all) {
  return [&, reports](const samplers::StepInfo& step) {
    if (!reports || !update) return;
    SampleUpdate progress;
    progress.step = steps_before + step.step + 1;
    progress.total = std::max(steps_in_all, step.total);
    progress.sigma = step.sigma;
    progress.elapsed_seconds = step.elapsed_seconds;
    if (step.preview_png != nullptr) {
      progress.preview_png = *step.preview_png;
      outcome.preview_png = *step.preview_png;
    }
    update(progress);
  };
}

// A prompt's encoding as conditioning, as wide as the model reads it: the text alone (T2V), or
// with the start image's encoding (I2V: `clip_fea` and `y`, the same for both prompts).
absl::StatusOr<models::wan::WanConditioning> EncodedConditioning(
    const at::Tensor& text, const std::string& field, const models::wan::WanConfig& config,
    const at::Tensor& clip_fea = {}, const at::Tensor& y = {}) {
  if (config.i2v() != clip_fea.defined()) {
    return absl::InvalidArgumentError(
        config.i2v() ? absl::StrCat(field, ": ", config.name,
                                    " takes a start image with the text: give `image`")
                     : absl::StrCat("image: ", config.name, " takes no start image"));
  }
  if (text.size(-1) != config.text_dim) {
    return absl::InvalidArgumentError(absl::StrCat("text_encoder: its ", text.size(-1),
                                                   "-wide tokens do not fit ", config.name,
                                                   "'s text width ", config.text_dim));
  }
  if (text.size(1) > models::wan::WanConfig::kMaxTextTokens) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", text.size(1), " tokens; at most ",
                                                   models::wan::WanConfig::kMaxTextTokens));
  }
  models::wan::WanConditioning conditioning;
  conditioning.text = text;
  if (clip_fea.defined()) {
    if (clip_fea.size(-1) != config.image_dim) {
      return absl::InvalidArgumentError(absl::StrCat("clip_vision: its ", clip_fea.size(-1),
                                                     "-wide features do not fit ", config.name,
                                                     "'s image width ", config.image_dim));
    }
    if (y.size(1) != config.in_channels - config.out_channels) {
      return absl::InvalidArgumentError(
          absl::StrCat("vae: its ", y.size(1) - 4, "-channel latent does not fit ", config.name));
    }
    conditioning.clip_fea = clip_fea;
    conditioning.y = y;
  }
  return conditioning;
}

}  // namespace

class DiffusionEngine::Impl {
 public:
  explicit Impl(const worker::ActorEnvironment& environment) : environment_(environment) {
#ifdef RAYLIGHT_HAVE_CUDA
    if (environment.gpu_index >= 0) {
      device_ = at::Device(at::kCUDA, environment.gpu_index);
      c10::cuda::set_device(environment.gpu_index);
      // The caching allocator exists once CUDA is initialised; its statistics (FreeDeviceBytes,
      // DeviceAllocatedBytes) are read before the first tensor would initialise it.
      at::globalContext().lazyInitDevice(at::kCUDA);
    }
#endif
    prompts_ = std::make_unique<PromptEncoder>(device_);
    video_ = std::make_unique<VideoOutput>(device_);
    images_ = std::make_unique<ImageEncoder>(device_);
    // CPU workers share the machine's cores with each other: one intra-op thread each unless
    // told otherwise (measured: two processes' OpenMP pools contending cost more than they gave).
    const char* threads = std::getenv("RAYLIGHT_TORCH_THREADS");
    at::set_num_threads(threads != nullptr ? std::max(1, std::atoi(threads)) : gpu() ? 4 : 1);
    if (const char* limit = std::getenv("RAYLIGHT_MODEL_MEMORY_MIB"); limit != nullptr) {
      model_memory_limit_ = std::max<int64_t>(0, std::atoll(limit)) << 20;
    }
  }

  bool gpu() const { return device_.is_cuda(); }

  absl::StatusOr<Membership*> MembershipOf(const worker::GroupContext& group) {
    auto it = groups_.find(group.group_id);
    if (it != groups_.end() && it->second.incarnation != group.incarnation) {
      DropGroup(group.group_id);
      it = groups_.end();
    }
    // An aborted membership (a rank was lost, the head went away mid-run) is never used again:
    // ABORTED tells the head to form the group anew (not the job's failure).
    const std::shared_ptr<comm::AbortSignal> signal = SignalFor(group.group_id, group.incarnation);
    if (signal->fired()) {
      return absl::AbortedError(
          absl::StrCat("group ", group.name, " incarnation ", group.incarnation, " was aborted (",
                       signal->why().message(), "); it must be formed again"));
    }
    if (it != groups_.end()) return &it->second;
    Membership membership;
    membership.incarnation = group.incarnation;
    const std::string name = absl::StrCat("diffusion-", group.incarnation);
    absl::StatusOr<std::unique_ptr<comm::Communicator>> world;
    if (group.backend == worker::CollectiveBackend::kNccl) {
      if (!gpu()) return absl::FailedPreconditionError("backend: NCCL needs a GPU worker");
      comm::NcclOptions options;
      options.timeout = CollectiveTimeout();
      options.group_name = name;
      options.abort_signal = signal;
      world = comm::CreateNcclCommunicator(*group.store, group.rank, group.size,
                                           environment_.gpu_index, options);
    } else {
      comm::GlooOptions options;
      options.timeout = CollectiveTimeout();
      options.hostname = environment_.host;
      options.group_name = name;
      options.abort_signal = signal;
      world = comm::CreateGlooCommunicator(*group.store, group.rank, group.size, options);
    }
    if (!world.ok()) return world.status();
    membership.world = *std::move(world);
    return &(groups_[group.group_id] = std::move(membership));
  }

  absl::StatusOr<parallel::Mesh*> MeshOf(Membership& membership, const parallel::MeshShape& shape) {
    const std::string key = shape.ToString();
    auto it = membership.meshes.find(key);
    if (it != membership.meshes.end()) return it->second.get();
    auto mesh = parallel::Mesh::Build(*membership.world, shape);
    if (!mesh.ok()) return mesh.status();
    return (membership.meshes[key] = *std::move(mesh)).get();
  }

  static absl::StatusOr<parallel::MeshPlan> PlanFor(const parallel::MeshShape& mesh,
                                                    const worker::GroupContext& group,
                                                    const models::ModelInfo& info, double cfg) {
    return parallel::PlanMesh(mesh, group.size, info.num_heads, cfg);
  }

  // The group's communicator and the mesh of this shape over it, created on first use (NCCL's
  // setup is collective: every rank of the group gets here in the same call).
  absl::StatusOr<parallel::Mesh*> MeshFor(const parallel::MeshShape& mesh,
                                          const worker::GroupContext& group) {
    auto membership = MembershipOf(group);
    if (!membership.ok()) return membership.status();
    return MeshOf(**membership, mesh);
  }

  // The smallest of each value over the group's ranks (one all-reduce).
  absl::StatusOr<std::vector<int64_t>> GroupMinimum(const worker::GroupContext& group,
                                                    std::vector<int64_t> values) {
    if (group.size < 2) return values;
    auto membership = MembershipOf(group);
    if (!membership.ok()) return membership.status();
    at::Tensor t = at::tensor(values, at::kLong).to(device_);
    if (auto status = (*membership)->world->AllReduce(t, comm::ReduceOp::kMin); !status.ok()) {
      return status;
    }
    t = t.cpu();
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }

  // "files|dtype|": how the keys of the models of these files in this dtype begin.
  // The cache key's model part: files, dtype, and the LoRAs merged (another set or strength is
  // another model).
  static std::string ModelPrefix(const ModelRequest& request, at::ScalarType dtype) {
    std::string loras;
    for (const LoraRequest& lora : request.loras) {
      absl::StrAppend(&loras, "+", lora.path, "@", lora.strength);
    }
    return absl::StrCat(absl::StrJoin(request.files, ","), loras, "|", DtypeName(dtype), "|");
  }

  static std::vector<models::LoraFile> LorasOf(const ModelRequest& request) {
    std::vector<models::LoraFile> loras;
    for (const LoraRequest& lora : request.loras) loras.push_back({lora.path, lora.strength});
    return loras;
  }

  static std::string GroupKey(const worker::GroupContext& group) {
    return absl::StrCat(group.group_id, "#", group.incarnation);
  }

  // The loaded model of these files and dtype that this group can use (FSDP ones only on the
  // group they were sharded over), or nullptr.
  const LoadedModel* LoadedFor(const ModelRequest& request, at::ScalarType dtype,
                               const worker::GroupContext& group) const {
    const std::string prefix = ModelPrefix(request, dtype);
    for (auto it = models_.lower_bound(prefix); it != models_.end(); ++it) {
      if (it->first.rfind(prefix, 0) != 0) break;
      if (it->second.group_key.empty() || it->second.group_key == GroupKey(group)) {
        return &it->second;
      }
    }
    return nullptr;
  }

  // The checkpoint's bytes as placed, read from its header once per files and dtype.
  absl::StatusOr<const models::MeasuredModel*> Measure(const ModelRequest& request,
                                                       at::ScalarType dtype) {
    const std::string key = ModelPrefix(request, dtype);
    if (auto it = measured_.find(key); it != measured_.end()) return &it->second;
    auto bytes = models::MeasureDiffusionModel(request.files, dtype);
    if (!bytes.ok()) return bytes.status();
    return &(measured_[key] = *std::move(bytes));
  }

  // An explicit placement is taken as asked; "auto" runs the planner
  // (models/core/placement_plan.h) on the model's bytes, the job's activations and the group's
  // smallest free device and host memory, which the ranks agree on by one all-reduce so that all
  // reach the same decision (an FSDP load is collective).
  absl::StatusOr<PlacementDecision> ChoosePlacement(const ModelRequest& request,
                                                    at::ScalarType dtype,
                                                    const worker::GroupContext& group,
                                                    const JobShape& shape) {
    const bool automatic = request.placement.empty() || request.placement == "auto";
    models::Placement requested = models::Placement::kResident;
    if (!automatic) {
      auto parsed = models::ParsePlacement(request.placement);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("placement: ", parsed.status().message()));
      }
      requested = *parsed;
    }
    const bool sharded =
        requested == models::Placement::kFsdp || requested == models::Placement::kFsdpHost;
    if (!automatic && sharded && group.size < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("placement: ", request.placement, " needs a group of 2 or more ranks"));
    }
    if (request.swap_budget < 0 || request.swap_budget > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("swap_budget: ", request.swap_budget, " is not a fraction in (0, 1]"));
    }
    auto measured = Measure(request, dtype);
    if (!measured.ok()) return measured.status();
    const int64_t tokens_per_rank =
        (shape.tokens((*measured)->info) + shape.sequence_degree - 1) / shape.sequence_degree;
    models::PlacementInputs inputs = (*measured)->bytes;
    inputs.activation_bytes = (*measured)->activation_bytes(tokens_per_rank, shape.batch);
    inputs.group_size = group.size;
    inputs.weight_limit_bytes = model_memory_limit_ > 0 ? model_memory_limit_ : INT64_MAX;
    // Loaded models count as free: they are evicted (LRU) to make room.
    inputs.free_vram_bytes = std::max<int64_t>(1, DeviceFreeBytes() + HeldDeviceBytes());
    // Ranks on one machine share its memory.
    inputs.free_host_bytes = HostAvailableBytes() / std::max(group.size, 1);

    PlacementDecision decision;
    if (!automatic) {
      // This rank's numbers are enough: an explicit choice is the same on every rank, and swap
      // budgets may differ between ranks without changing a result.
      const models::PlacementChoice needs = models::PlacementFor(inputs, requested);
      decision.name = models::PlacementName(requested);
      decision.device_bytes = needs.device_bytes;
      decision.reason = "requested";
      if (requested == models::Placement::kLayerSwap && request.swap_budget > 0) {
        decision.swap.budget_fraction = request.swap_budget;
        decision.device_bytes =
            inputs.global_bytes +
            static_cast<int64_t>(inputs.block_bytes * inputs.num_blocks * request.swap_budget);
        decision.reason =
            absl::StrCat("requested, ", request.swap_budget, " of the blocks on the device");
      } else if (requested == models::Placement::kLayerSwap) {
        decision.swap.budget_bytes = needs.swap_budget_bytes;
        decision.reason = absl::StrCat("requested, ", needs.swap_budget_bytes >> 20,
                                       " MiB for blocks from free memory on the device");
      }
      return decision;
    }
    // Agreed: free device memory, the limit, free host memory, and which placement of this model
    // each rank has loaded (1 + its enum value, 0 for none; the minimum of the negated values
    // gives the largest).
    const LoadedModel* loaded = LoadedFor(request, dtype, group);
    const int64_t loaded_id =
        loaded == nullptr
            ? 0
            : 1 + static_cast<int64_t>(*models::ParsePlacement(loaded->summary.placement));
    auto agreed = GroupMinimum(group, {inputs.free_vram_bytes, inputs.weight_limit_bytes,
                                       inputs.free_host_bytes, loaded_id, -loaded_id});
    if (!agreed.ok()) return agreed.status();
    inputs.free_vram_bytes = (*agreed)[0];
    inputs.weight_limit_bytes = (*agreed)[1];
    inputs.free_host_bytes = (*agreed)[2];
    if ((*agreed)[3] > 0 && (*agreed)[3] == -(*agreed)[4]) {
      // Every rank has it loaded the same way: keep it (a load job chose it for this model).
      decision.name = models::PlacementName(static_cast<models::Placement>((*agreed)[3] - 1));
      decision.reason = "already loaded";
      return decision;
    }
    if (!gpu()) {
      decision.name = "resident";
      decision.reason = "CPU worker";
      return decision;
    }
    auto choice = models::PlanPlacement(inputs);
    if (!choice.ok()) return choice.status();
    decision.name = models::PlacementName(choice->placement);
    decision.device_bytes = choice->device_bytes;
    decision.swap.budget_bytes = choice->swap_budget_bytes;
    decision.reason = choice->reason;
    return decision;
  }

  // What a new model may take on the device: the driver's free memory plus the allocator's
  // cache, within RAYLIGHT_MODEL_MEMORY_MIB when set (the most this worker's models may hold, for a
  // GPU shared with other programs, as vLLM's gpu_memory_utilization).
  int64_t FreeDeviceBytes() const {
    int64_t free = DeviceFreeBytes();
    if (model_memory_limit_ > 0) {
      free = std::min(free, std::max<int64_t>(0, model_memory_limit_ - HeldDeviceBytes()));
    }
    return free;
  }

  // The device's free memory: the driver's plus the allocator's cache (no limit applied).
  int64_t DeviceFreeBytes() const {
    int64_t free = INT64_MAX / 4;
#ifdef RAYLIGHT_HAVE_CUDA
    if (gpu()) {
      size_t driver_free = 0, total = 0;
      if (cudaMemGetInfo(&driver_free, &total) == cudaSuccess) {
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
        const int64_t cached = stats.reserved_bytes[0].current - stats.allocated_bytes[0].current;
        free = static_cast<int64_t>(driver_free) + cached;
      }
    }
#endif
    return free;
  }

  // What the loaded models hold on the device.
  int64_t HeldDeviceBytes() const {
    int64_t held = 0;
    for (const auto& [key, model] : models_) held += model.summary.device_bytes;
    return held;
  }

  int64_t DeviceAllocatedBytes() const {
#ifdef RAYLIGHT_HAVE_CUDA
    if (gpu()) {
      return c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index())
          .allocated_bytes[0]
          .current;
    }
#endif
    return 0;
  }

  void EmptyDeviceCache() {
#ifdef RAYLIGHT_HAVE_CUDA
    if (gpu()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  }

  // Unloads the least recently used model other than those in `keep`; false when there is none.
  bool EvictOne(const std::vector<std::string>& keep) {
    // The text encoder goes first: its encodings are cached on the host, and it reloads in
    // seconds where a DiT takes longer.
    if (prompts_->Evict()) {
      RL_LOG(INFO) << "unloading the text encoder to make room";
      EmptyDeviceCache();
      return true;
    }
    if (images_->Evict()) {
      RL_LOG(INFO) << "unloading the CLIP vision tower to make room";
      EmptyDeviceCache();
      return true;
    }
    if (video_->Evict()) {
      RL_LOG(INFO) << "unloading the VAE to make room";
      EmptyDeviceCache();
      return true;
    }
    auto victim = models_.end();
    for (auto it = models_.begin(); it != models_.end(); ++it) {
      if (std::find(keep.begin(), keep.end(), it->first) != keep.end()) continue;
      if (victim == models_.end() ||
          it->second.summary.last_used_unix_ms < victim->second.summary.last_used_unix_ms) {
        victim = it;
      }
    }
    if (victim == models_.end()) return false;
    RL_LOG(INFO) << "unloading " << victim->second.summary.path << " ("
                 << victim->second.summary.placement << ") to make room";
    models_.erase(victim);
    EmptyDeviceCache();
    return true;
  }

  // The model of `request`, loaded (and placed) if it is not resident. `keep`: the cache keys of
  // models the job also uses, which eviction must leave alone (a two-expert job's other expert).
  absl::StatusOr<LoadedModel*> Ensure(const ModelRequest& request,
                                      const worker::GroupContext& group, const JobShape& shape,
                                      bool* was_resident, double* seconds, std::string* reason,
                                      std::vector<std::string> keep = {}) {
    if (request.files.empty()) return absl::InvalidArgumentError("model: no files");
    auto dtype = ComputeDtype(request.dtype, gpu());
    if (!dtype.ok()) return dtype.status();
    auto decision = ChoosePlacement(request, *dtype, group, shape);
    if (!decision.ok()) return decision.status();
    *reason = decision->reason;
    const std::string& placement = decision->name;
    const bool sharded = placement == "fsdp" || placement == "fsdp-host";
    const std::string group_key = sharded ? GroupKey(group) : "";
    // A swap budget asked for is part of what was loaded: another budget loads again.
    const std::string variant = placement == "swap" && request.swap_budget > 0
                                    ? absl::StrCat(placement, ":", request.swap_budget)
                                    : placement;
    const std::string key = absl::StrCat(ModelPrefix(request, *dtype), variant, "|", group_key);
    if (auto it = models_.find(key); it != models_.end()) {
      *was_resident = true;
      *seconds = 0;
      it->second.summary.last_used_unix_ms = NowUnixMs();
      return &it->second;
    }
    *was_resident = false;
    keep.push_back(key);
    while (decision->device_bytes > FreeDeviceBytes() * 9 / 10 && EvictOne(keep)) {
    }
    const auto start = Clock::now();
    const int64_t device_before = DeviceAllocatedBytes();
    const int64_t host_before = HostRssBytes();
    models::PlacementOptions options;
    options.device = device_;
    options.compute_dtype = *dtype;
    absl::StatusOr<std::unique_ptr<models::DiffusionModel>> loaded;
    for (;;) {
      models::WeightPlacement where = models::WeightPlacement::Resident();
      if (sharded) {
        auto membership = MembershipOf(group);
        if (!membership.ok()) return membership.status();
        models::ShardOptions shards;
        shards.host_shards = placement == "fsdp-host";
        where = models::WeightPlacement::Sharded(*(*membership)->world, shards);
      } else if (placement == "swap") {
        where = models::WeightPlacement::Swapped(decision->swap);
      }
      loaded = models::LoadDiffusionModel(request.files, options, where, LorasOf(request));
      // Out of device memory with other models loaded: make room and try again.
      if (loaded.ok() || loaded.status().code() != absl::StatusCode::kResourceExhausted ||
          !EvictOne(keep)) {
        break;
      }
    }
    if (!loaded.ok()) return loaded.status();
    *seconds = SecondsSince(start);
    if (!request.loras.empty()) {
      const models::LoraReport& merged = (*loaded)->loras();
      RL_LOG(INFO) << "merged " << request.loras.size() << " LoRAs into " << merged.patched_tensors
                   << " tensors";
      // As ComfyUI's "lora key not loaded": listed, not an error (the others apply).
      for (const std::string& key : merged.unmatched_keys) {
        RL_LOG(WARNING) << "lora key not loaded: " << key;
      }
    }
    LoadedModel model{*std::move(loaded), {}, group_key, key};
    model.summary.path = request.files.front();
    model.summary.variant = model.model->info().variant;
    model.summary.dtype = DtypeName(*dtype);
    model.summary.placement = placement;
    model.summary.device_bytes = DeviceAllocatedBytes() - device_before;
    model.summary.host_bytes = std::max<int64_t>(0, HostRssBytes() - host_before);
    model.summary.last_used_unix_ms = NowUnixMs();
    RL_LOG(INFO) << "loaded " << model.summary.path << " (" << model.summary.variant << ", "
                 << model.summary.dtype << ", " << model.summary.placement << ") in " << *seconds
                 << " s";
    return &(models_[key] = std::move(model));
  }

  // Wan 2.2 A14B in one job: the two runs of samplers::SplitForExperts, the second starting on
  // every data-parallel rank from its own first result, exactly as two chained jobs would.
  // Returns what KSampleOnMesh returns ([dp, ...], every rank).
  static absl::StatusOr<at::Tensor> SampleExperts(
      const samplers::ModelFn& high_noise, const samplers::ModelFn& low_noise,
      const samplers::ModelSampling& sampling, const at::Tensor& latent,
      const samplers::KSamplerOptions& options, const SampleRequest& request,
      const models::wan::WanConfig& config, const parallel::Mesh& mesh,
      const parallel::MeshPlan& plan, const samplers::StepCallback& callback, int* steps_before,
      int* steps_in_all) {
    const double boundary = request.boundary > 0 ? request.boundary
                            : config.i2v()       ? kWan22I2vBoundary
                                                 : kWan22T2vBoundary;
    auto runs = samplers::SplitForExperts(sampling, options, boundary);
    if (!runs.ok()) return runs.status();
    *steps_in_all = runs->high_noise_steps + runs->low_noise_steps;
    if (!runs->low_noise) {
      return samplers::KSampleOnMesh(high_noise, sampling, latent, *runs->high_noise, mesh, plan,
                                     request.seeds, callback);
    }
    at::Tensor start = latent;
    if (runs->high_noise) {
      auto first = samplers::KSampleOnMesh(high_noise, sampling, latent, *runs->high_noise, mesh,
                                           plan, request.seeds, callback);
      if (!first.ok()) return first.status();
      start = first->select(0, mesh.coords().dp);  // this data-parallel rank's own LATENT
      *steps_before = runs->high_noise_steps;
    }
    return samplers::KSampleOnMesh(low_noise, sampling, start, *runs->low_noise, mesh, plan,
                                   request.seeds, callback);
  }

  absl::StatusOr<SampleOutcome> Sample(const SampleRequest& request,
                                       const worker::GroupContext& group, const UpdateFn& update,
                                       const CancelledFn& cancelled) {
    const auto start = Clock::now();
    const bool reports = group.rank == 0;
    auto note = [&](std::string message) {
      RL_LOG(INFO) << "job " << request.job_id << ": " << message;
      if (reports && update) update(SampleUpdate{.message = std::move(message)});
    };
    // The family decides the run: Wan's (prompts, images, experts, video) or an image family's.
    RL_ASSIGN_OR_RETURN(const models::ModelInfo info, models::InspectModel(request.model.files));
    if (info.family == "flux") return SampleFlux(request, group, update, cancelled, note);
    SampleOutcome outcome;
    std::string reason;
    const bool decodes = request.output != "latent";
    // An output this worker cannot write (no FFmpeg) fails before anything is spent on it.
    if (decodes) RL_RETURN_IF_ERROR(models::vae::CheckVideoFileKind(request.output));
    {
      // A cancel that reached rank 0 before the run started stops every rank here, together.
      RL_ASSIGN_OR_RETURN(Membership * membership, MembershipOf(group));
      RL_RETURN_IF_ERROR(
          AgreeToGoOn(*membership->world, reports, cancelled, device_, request.job_id));
    }
    // Prompts and images are encoded before the model loads; the starting latent's size is the
    // job's for the placement.
    auto inputs = MakeJobInputs(
        request, group.rank, SideModels{*prompts_, *images_, *video_}, device_,
        ComputeDtype(request.model.dtype, gpu()),
        [&]() -> absl::StatusOr<comm::Communicator*> {
          RL_ASSIGN_OR_RETURN(Membership * membership, MembershipOf(group));
          return membership->world.get();
        },
        note);
    if (!inputs.ok()) return inputs.status();
    at::Tensor latent = inputs->latent, noise_mask = inputs->noise_mask;
    const at::Tensor &prompt_text = inputs->prompt_text,
                     &negative_prompt_text = inputs->negative_prompt_text;
    const at::Tensor &image_clip_fea = inputs->image_clip_fea, &image_y = inputs->image_y;
    JobShape shape = ShapeOf(request.mesh, request.cfg);
    shape.tokens = [&](const models::ModelInfo& info) -> int64_t {
      if (latent.dim() == 5) return info.Tokens(latent.size(2), latent.size(3), latent.size(4));
      return info.PixelTokens(request.frames, request.height, request.width);
    };
    auto model = Ensure(request.model, group, shape, &outcome.model_was_resident,
                        &outcome.load_seconds, &reason);
    if (!model.ok()) return model.status();
    const auto* wan_model = dynamic_cast<const models::WanDiffusionModel*>((*model)->model.get());
    if (wan_model == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: ", (*model)->summary.path, " is not a Wan model"));
    }
    const models::wan::WanConfig& config = wan_model->config();
    outcome.placement = absl::StrCat((*model)->summary.placement, " (", reason, ")");
    note(outcome.model_was_resident
             ? absl::StrCat("model ", (*model)->summary.path, " is resident (", config.name, ", ",
                            outcome.placement, ")")
             : absl::StrCat("loaded ", (*model)->summary.path, " (", config.name, ", ",
                            outcome.placement, ") in ", outcome.load_seconds, " s"));
    // Wan 2.2 A14B: the low-noise expert beside the high-noise one, both kept.
    LoadedModel* low_noise = nullptr;
    if (!request.low_noise_model.files.empty()) {
      bool resident = false;
      double seconds = 0;
      std::string low_reason;
      auto loaded = Ensure(request.low_noise_model, group, shape, &resident, &seconds, &low_reason,
                           {(*model)->key});
      if (!loaded.ok()) {
        return absl::Status(loaded.status().code(),
                            absl::StrCat("low_noise_model: ", loaded.status().message()));
      }
      low_noise = *loaded;
      if (!low_noise->model->SameArchitecture(*(*model)->model)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "low_noise_model: ", low_noise->model->info().variant,
            " is not the architecture of the ", "high-noise expert (", config.name, ")"));
      }
      outcome.model_was_resident = outcome.model_was_resident && resident;
      outcome.load_seconds += seconds;
      note(resident ? absl::StrCat("low-noise expert ", low_noise->summary.path, " is resident")
                    : absl::StrCat("loaded the low-noise expert ", low_noise->summary.path, " (",
                                   low_noise->summary.placement, ") in ", seconds, " s"));
    }

    auto plan = PlanFor(request.mesh, group, (*model)->model->info(), request.cfg);
    if (!plan.ok()) return plan.status();
    for (const std::string& line : plan->notes) note(line);
    auto mesh = MeshFor(request.mesh, group);
    if (!mesh.ok()) return mesh.status();
    auto membership = MembershipOf(group);  // made by MeshFor just above, unless aborted since
    if (!membership.ok()) return membership.status();
    comm::Communicator& world = *(*membership)->world;

    auto positive =
        prompt_text.defined()
            ? EncodedConditioning(prompt_text, "prompt", config, image_clip_fea, image_y)
            : models::wan::ParseWanConditioning(request.positive, "positive", config);
    if (!positive.ok()) return positive.status();
    models::wan::WanConditioning negative;
    if (request.cfg != 1.0) {
      auto parsed = negative_prompt_text.defined()
                        ? EncodedConditioning(negative_prompt_text, "negative_prompt", config,
                                              image_clip_fea, image_y)
                        : models::wan::ParseWanConditioning(request.negative, "negative", config);
      if (!parsed.ok()) return parsed.status();
      negative = *std::move(parsed);
    }
    if (latent.defined()) {
      if (latent.dim() != 5 || latent.size(0) != 1 || latent.size(1) != config.out_channels) {
        return absl::InvalidArgumentError(absl::StrCat("latent: shape ", c10::str(latent.sizes()),
                                                       "; ", config.name, " takes [1, ",
                                                       config.out_channels, ", F, H, W]"));
      }
    } else {
      const int64_t spatial = config.vae_spatial();
      latent = at::zeros({1, config.out_channels, (request.frames - 1) / 4 + 1,
                          request.height / spatial, request.width / spatial});
    }
    auto latent_format = models::LatentFormatForChannels(config.out_channels);
    if (!latent_format.ok()) return latent_format.status();
    if (config.i2v() && positive->y.sizes().slice(2) != latent.sizes().slice(2)) {
      return absl::InvalidArgumentError(
          absl::StrCat("positive: 'y' is ", c10::str(positive->y.sizes()),
                       ", not the latent's frames x height x width ", c10::str(latent.sizes())));
    }
    const at::TensorOptions on_device = at::TensorOptions().device(device_);
    const at::Tensor positive_text = positive->text.to(device_);
    const at::Tensor negative_text =
        negative.text.defined() ? negative.text.to(device_) : positive_text;
    const at::Tensor clip_fea =
        positive->clip_fea.defined() ? positive->clip_fea.to(device_) : at::Tensor();
    const at::Tensor y = positive->y.defined() ? positive->y.to(device_) : at::Tensor();
    // A noise mask: Wan 2.2's 48-channel model (ComfyUI's WAN22) sees a timestep per frame,
    // scaled by the frame's share of noise — [1, tokens] after repeating over a frame's tokens.
    at::Tensor frame_timestep_scale;
    int64_t tokens_per_frame = 0;
    if (noise_mask.defined()) {
      if (config.i2v()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "latent: a 'noise_mask' with ", config.name,
            " (image-to-video takes its mask from the conditioning) is not supported"));
      }
      auto prepared = samplers::PrepareDenoiseMask(noise_mask, latent.sizes());
      if (!prepared.ok()) {
        return absl::Status(prepared.status().code(),
                            absl::StrCat("latent: ", prepared.status().message()));
      }
      if (config.per_token_timesteps()) {
        frame_timestep_scale = samplers::FrameTimestepScale(*prepared).to(device_);
        tokens_per_frame = (latent.size(3) / config.patch_h) * (latent.size(4) / config.patch_w);
      }
    }
    const models::ParallelContext sequence = (*mesh)->sequence_context();
    // Rank 0 journals the run's model outputs where every rank's are the same (no data or CFG
    // parallel axis), so that the job's next run after a lost rank replays them.
    std::unique_ptr<ModelCallJournal> journal = OpenJournal(request, group.rank);
    if (journal != nullptr && journal->recorded() > 0) {
      note(absl::StrCat("resuming: an earlier run of this job left ", journal->recorded(),
                        " model calls to replay"));
    }
    AgreedModelCalls agreed(world, reports, cancelled, journal.get(), device_, request.job_id);
    // Step caching (TeaCache): one state per model and conditioning branch.
    auto step_caches =
        StepCaches::ForJob(request, config, latent.size(4) * config.vae_spatial(),
                           latent.size(3) * config.vae_spatial(), low_noise != nullptr);
    if (!step_caches.ok()) return step_caches.status();
    if (step_caches->enabled()) note(step_caches->Describe());
    // The network of one loaded model (an expert of a two-expert job, or the job's model).
    auto model_fn_for = [&](models::WeightProvider& weights) -> samplers::ModelFn {
      return [&, weights = &weights](const at::Tensor& x, double timestep,
                                     samplers::Branch branch) -> absl::StatusOr<at::Tensor> {
        auto forward = [&]() -> absl::StatusOr<at::Tensor> {
          auto inputs = [&](bool cond) {
            models::wan::WanInputs in;
            in.x = x;
            in.t = at::full({1}, timestep, on_device.dtype(at::kFloat));
            if (frame_timestep_scale.defined()) {
              in.t = (frame_timestep_scale * in.t).repeat_interleave(tokens_per_frame, 1);
            }
            in.context = cond ? positive_text : negative_text;
            in.clip_fea = clip_fea;
            in.y = y;
            return in;
          };
          models::wan::WanInputs batch =
              samplers::InputsFor(branch, inputs, models::wan::BatchInputs);
          batch.step_cache = step_caches->For(weights, static_cast<int>(branch));
          return models::wan::WanForward(config, batch, sequence, *weights);
        };
        return agreed.Call(x, timestep, static_cast<int>(branch), forward);
      };
    };

    samplers::KSamplerOptions options = SamplerOptionsOf(request);
    // Cond and uncond batched only where that is exact (texts past text_len of different
    // lengths are not: ComfyUI runs them apart too).
    if (!models::wan::TextsBatchExactly(config, positive_text.size(-2), negative_text.size(-2))) {
      options.batch_cfg = false;
    }
    // Latents enter and leave in ComfyUI's LATENT convention (the VAE's space).
    options.latent_format = *latent_format;
    options.denoise_mask = noise_mask;
    options.inpaint_input = config.per_token_timesteps() ? samplers::InpaintInput::kClean
                                                         : samplers::InpaintInput::kRenoised;
    const samplers::ModelSampling sampling =
        samplers::ModelSampling::DiscreteFlow(request.shift > 0 ? request.shift : 5.0);
    const auto sample_start = Clock::now();
    // A two-expert job is two runs; progress counts the steps of both.
    int steps_before = 0, steps_in_all = 0;
    samplers::StepCallback callback =
        ProgressCallback(reports, update, outcome, steps_before, steps_in_all);
    absl::StatusOr<at::Tensor> out;
    if (low_noise == nullptr) {
      out = samplers::KSampleOnMesh(model_fn_for((*model)->model->weights()), sampling,
                                    latent.to(device_), options, **mesh, *plan, request.seeds,
                                    callback);
    } else {
      out = SampleExperts(model_fn_for((*model)->model->weights()),
                          model_fn_for(low_noise->model->weights()), sampling, latent.to(device_),
                          options, request, config, **mesh, *plan, callback, &steps_before,
                          &steps_in_all);
    }
    if (!out.ok()) {
      // A cancelled job does not run again; an aborted or failed run may (its journal stays).
      if (journal != nullptr && out.status().code() == absl::StatusCode::kCancelled) {
        journal->Remove();
      }
      return out.status();
    }
    outcome.sample_seconds = SecondsSince(sample_start);
    if (reports) {
      // [dp, 1, C, F, H, W] -> a batch of dp latents, as ComfyUI stores a batch.
      at::Tensor result = out->to(at::kCPU).flatten(0, 1);
      // The mask goes on with the result, as ComfyUI's KSampler passes the LATENT's on.
      auto bytes = models::SerializeLatent(result, noise_mask);
      if (!bytes.ok()) return bytes.status();
      outcome.latent = *std::move(bytes);
    }
    if (decodes) {
      auto dtype = ComputeDtype(request.model.dtype, gpu());
      if (!dtype.ok()) return dtype.status();
      note(absl::StrCat("decoding ", out->size(0), " latent(s) of ", out->size(3), " frames over ",
                        world.size(), " rank(s)"));
      VideoOutputRequest video{.output = request.output,
                               .vae_files = request.vae_files,
                               .fps = request.fps,
                               .crf = request.crf,
                               .dtype = *dtype,
                               .free_bytes = gpu() ? DeviceFreeBytes() : 0};
      auto decoded = video_->Decode(video, out->flatten(0, 1), world);
      if (!decoded.ok()) return decoded.status();
      outcome.video = std::move(decoded->file);
      outcome.video_format = decoded->format;
      outcome.decode_seconds = decoded->seconds;
      note(absl::StrCat("decoded ", decoded->frames, " frames to ", decoded->format, " in ",
                        absl::StrFormat("%.2f", decoded->seconds), " s",
                        decoded->tile > 0 ? absl::StrCat(" (in ", decoded->tile,
                                                         "-pixel tiles: device memory short)")
                                          : ""));
    }
    if (journal != nullptr) journal->Remove();  // the job is done: nothing to resume
    outcome.model_calls = static_cast<int>(agreed.calls());
    outcome.calls_reused = step_caches->reused();
    if (step_caches->enabled()) {
      note(absl::StrCat("TeaCache reused the blocks' residual for ", outcome.calls_reused, " of ",
                        outcome.model_calls, " model calls"));
    }
    RL_LOG(INFO) << "job " << request.job_id << ": sampled " << request.steps << " steps in "
                 << outcome.sample_seconds << " s (" << SecondsSince(start) << " s in all"
                 << (agreed.replayed() > 0
                         ? absl::StrCat(", ", agreed.replayed(), " of ", agreed.calls(),
                                        " model calls replayed from an earlier run")
                         : std::string())
                 << ")";
    return outcome;
  }

  // An image family's run (Flux.1): conditioning files in, a LATENT out. The head refuses what
  // Flux jobs cannot have yet (prompts: its CLIP-L and T5 encoders; images; decoding: its VAE;
  // step caches; LoRAs); the checks here say the same to a caller that skipped the head.
  absl::StatusOr<SampleOutcome> SampleFlux(const SampleRequest& request,
                                           const worker::GroupContext& group,
                                           const UpdateFn& update, const CancelledFn& cancelled,
                                           const std::function<void(std::string)>& note) {
    const auto start = Clock::now();
    const bool reports = group.rank == 0;
    for (const auto& [field, given] :
         {std::pair{"prompt", !request.prompt.empty()},
          std::pair{"image", !request.image.empty() || !request.end_image.empty()},
          std::pair{"low_noise_model", !request.low_noise_model.files.empty()},
          std::pair{"cache", !request.cache_kind.empty()},
          std::pair{"loras", !request.model.loras.empty()},
          std::pair{"output", request.output != "latent" && !request.output.empty()}}) {
      if (given) {
        return absl::InvalidArgumentError(
            absl::StrCat(field,
                         ": not available for Flux models yet (they take `positive` conditioning "
                         "files and return a latent)"));
      }
    }
    SampleOutcome outcome;
    std::string reason;
    {
      RL_ASSIGN_OR_RETURN(Membership * membership, MembershipOf(group));
      RL_RETURN_IF_ERROR(
          AgreeToGoOn(*membership->world, reports, cancelled, device_, request.job_id));
    }
    // The starting LATENT ([B, 16, H, W] as ComfyUI stores an image latent), or an empty one.
    at::Tensor latent;
    if (!request.latent.empty()) {
      RL_ASSIGN_OR_RETURN(models::Latent parsed, models::ParseLatent(request.latent, "latent"));
      if (parsed.noise_mask.defined()) {
        return absl::InvalidArgumentError(
            "latent: a 'noise_mask' with a Flux model is not supported yet");
      }
      latent = parsed.samples.dim() == 3 ? parsed.samples.unsqueeze(0) : parsed.samples;
    }
    JobShape shape = ShapeOf(request.mesh, request.cfg);
    shape.tokens = [&](const models::ModelInfo& info) -> int64_t {
      if (latent.defined() && latent.dim() == 4) {
        return info.Tokens(1, latent.size(2), latent.size(3));
      }
      return info.PixelTokens(1, request.height, request.width);
    };
    RL_ASSIGN_OR_RETURN(LoadedModel * model,
                        Ensure(request.model, group, shape, &outcome.model_was_resident,
                               &outcome.load_seconds, &reason));
    const auto* flux_model = dynamic_cast<const models::FluxDiffusionModel*>(model->model.get());
    if (flux_model == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: ", model->summary.path, " is not a Flux model"));
    }
    const models::flux::FluxConfig& config = flux_model->config();
    outcome.placement = absl::StrCat(model->summary.placement, " (", reason, ")");
    note(outcome.model_was_resident
             ? absl::StrCat("model ", model->summary.path, " is resident (", config.name, ", ",
                            outcome.placement, ")")
             : absl::StrCat("loaded ", model->summary.path, " (", config.name, ", ",
                            outcome.placement, ") in ", outcome.load_seconds, " s"));
    if (latent.defined()) {
      if (latent.dim() != 4 || latent.size(0) != 1 || latent.size(1) != config.latent_channels) {
        return absl::InvalidArgumentError(absl::StrCat("latent: shape ", c10::str(latent.sizes()),
                                                       "; ", config.name, " takes [1, ",
                                                       config.latent_channels, ", H, W]"));
      }
    } else {
      latent = at::zeros({1, config.latent_channels, request.height / 8, request.width / 8});
    }
    RL_ASSIGN_OR_RETURN(parallel::MeshPlan plan,
                        PlanFor(request.mesh, group, model->model->info(), request.cfg));
    for (const std::string& line : plan.notes) note(line);
    RL_ASSIGN_OR_RETURN(parallel::Mesh * mesh, MeshFor(request.mesh, group));
    RL_ASSIGN_OR_RETURN(Membership * membership, MembershipOf(group));
    comm::Communicator& world = *membership->world;

    RL_ASSIGN_OR_RETURN(models::flux::FluxConditioning positive,
                        models::flux::ParseFluxConditioning(request.positive, "positive", config));
    models::flux::FluxConditioning negative = positive;
    if (request.cfg != 1.0) {
      RL_ASSIGN_OR_RETURN(
          negative, models::flux::ParseFluxConditioning(request.negative, "negative", config));
    }
    const models::ParallelContext sequence = mesh->sequence_context();
    std::unique_ptr<ModelCallJournal> journal = OpenJournal(request, group.rank);
    if (journal != nullptr && journal->recorded() > 0) {
      note(absl::StrCat("resuming: an earlier run of this job left ", journal->recorded(),
                        " model calls to replay"));
    }
    AgreedModelCalls agreed(world, reports, cancelled, journal.get(), device_, request.job_id);
    models::WeightProvider& weights = model->model->weights();
    const at::TensorOptions floats = at::TensorOptions().device(device_).dtype(at::kFloat);
    auto as_inputs = [&](const models::flux::FluxConditioning& c) {
      models::flux::FluxInputs in;
      in.context = c.text.to(device_);
      in.pooled = c.pooled.to(device_);
      in.guidance = at::full({1}, c.guidance, floats);
      return in;
    };
    const models::flux::FluxInputs cond = as_inputs(positive), uncond = as_inputs(negative);
    samplers::ModelFn model_fn = [&](const at::Tensor& x, double timestep,
                                     samplers::Branch branch) -> absl::StatusOr<at::Tensor> {
      auto forward = [&]() -> absl::StatusOr<at::Tensor> {
        auto inputs = [&](bool positive_branch) {
          models::flux::FluxInputs in = positive_branch ? cond : uncond;
          in.x = x;
          in.t = at::full({x.size(0)}, timestep, floats);
          in.guidance = in.guidance.expand({x.size(0)});
          return in;
        };
        const models::flux::FluxInputs batch =
            samplers::InputsFor(branch, inputs, models::flux::BatchInputs);
        return models::flux::FluxForward(config, batch, sequence, weights);
      };
      return agreed.Call(x, timestep, static_cast<int>(branch), forward);
    };
    samplers::KSamplerOptions options = SamplerOptionsOf(request);
    if (!models::flux::TextsBatchExactly(cond.context.size(1), uncond.context.size(1))) {
      options.batch_cfg = false;
    }
    options.latent_format = &models::Flux1LatentFormat();
    // ComfyUI's ModelSamplingFlux: shift 1.15 for dev (its default), 1.0 for schnell (its
    // sampling_settings); the job's shift replaces it.
    const double shift = request.shift > 0 ? request.shift : config.guidance_embed ? 1.15 : 1.0;
    const samplers::ModelSampling sampling = samplers::ModelSampling::Flux(shift);
    const auto sample_start = Clock::now();
    const int no_steps_before = 0, no_total = 0;
    const samplers::StepCallback callback =
        ProgressCallback(reports, update, outcome, no_steps_before, no_total);
    auto out = samplers::KSampleOnMesh(model_fn, sampling, latent.to(device_), options, *mesh, plan,
                                       request.seeds, callback);
    if (!out.ok()) {
      if (journal != nullptr && out.status().code() == absl::StatusCode::kCancelled) {
        journal->Remove();
      }
      return out.status();
    }
    outcome.sample_seconds = SecondsSince(sample_start);
    if (reports) {
      // [dp, 1, C, H, W] -> a batch of dp latents, as ComfyUI stores a batch.
      RL_ASSIGN_OR_RETURN(outcome.latent,
                          models::SerializeLatent(out->to(at::kCPU).flatten(0, 1), at::Tensor()));
    }
    if (journal != nullptr) journal->Remove();
    outcome.model_calls = static_cast<int>(agreed.calls());
    RL_LOG(INFO) << "job " << request.job_id << ": sampled " << request.steps << " steps in "
                 << outcome.sample_seconds << " s (" << SecondsSince(start) << " s in all)";
    return outcome;
  }

  absl::StatusOr<LoadOutcome> Load(const ModelRequest& model, const parallel::MeshShape& mesh,
                                   const worker::GroupContext& group) {
    LoadOutcome outcome;
    std::string reason;
    // The job's size is not known yet: plan for Wan's default 832x480, 81 frames (an image
    // family's 1024x1024), with CFG.
    JobShape shape = ShapeOf(mesh, 5.0);
    shape.tokens = [](const models::ModelInfo& info) {
      return info.video ? info.PixelTokens(81, 480, 832) : info.PixelTokens(1, 1024, 1024);
    };
    auto loaded =
        Ensure(model, group, shape, &outcome.already_loaded, &outcome.load_seconds, &reason);
    if (!loaded.ok()) return loaded.status();
    outcome.model = (*loaded)->summary;
    // A group's first sample call used to create its NCCL communicators before its first step
    // (on 2 H200s, a 14B job's time outside its steps: 851 ms with that, 167 ms without; see
    // BENCHMARKS.md). A load is the moment to pay it. Any cfg: the mesh does not depend on it.
    if (group.size > 1) {
      if (auto plan = PlanFor(mesh, group, (*loaded)->model->info(), 1.0); !plan.ok()) {
        return plan.status();
      }
      if (auto built = MeshFor(mesh, group); !built.ok()) return built.status();
    }
    return outcome;
  }

  std::vector<ModelSummary> List() const {
    std::vector<ModelSummary> out;
    for (const auto& [key, model] : models_) out.push_back(model.summary);
    for (std::optional<ModelSummary> side :
         {prompts_->Summary(), images_->Summary(), video_->Summary()}) {
      if (side.has_value()) out.push_back(*std::move(side));
    }
    return out;
  }

  std::vector<ModelSummary> Unload(const std::string& path) {
    std::vector<ModelSummary> out;
    // Side models by their first file, as the list shows them.
    auto unload_side = [&](auto& holder) {
      std::optional<ModelSummary> side = holder.Summary();
      if (side.has_value() && (path.empty() || side->path == path) && holder.Evict()) {
        out.push_back(*std::move(side));
      }
    };
    unload_side(*prompts_);
    unload_side(*images_);
    unload_side(*video_);
    for (auto it = models_.begin(); it != models_.end();) {
      if (path.empty() || it->second.summary.path == path) {
        out.push_back(it->second.summary);
        it = models_.erase(it);
      } else {
        ++it;
      }
    }
    if (!out.empty()) EmptyDeviceCache();
    return out;
  }

  void DropGroup(const std::string& group_id) {
    // FSDP models hold the group's communicator: they go first.
    for (auto it = models_.begin(); it != models_.end();) {
      if (!it->second.group_key.empty() && it->second.group_key.rfind(group_id + "#", 0) == 0) {
        it = models_.erase(it);
      } else {
        ++it;
      }
    }
    groups_.erase(group_id);
    {
      absl::MutexLock lock(&signals_mu_);
      signals_.erase(group_id);
    }
    EmptyDeviceCache();
  }

  // Rank 0's journal of the job's model calls (model_call_journal.h), where there is one to keep:
  // a state directory, and every rank's model outputs the same (no data or CFG parallel axis,
  // whose ranks compute different latents or branches).
  std::unique_ptr<ModelCallJournal> OpenJournal(const SampleRequest& request, int rank) const {
    // A step-caching run is not journaled: its cached residuals would be missing after a replay.
    if (rank != 0 || environment_.state_dir.empty() || request.fingerprint == 0 ||
        request.mesh.dp > 1 || request.mesh.cfg > 1 || !request.cache_kind.empty()) {
      return nullptr;
    }
    const char* limit = std::getenv("RAYLIGHT_JOURNAL_MAX_MIB");
    const int64_t max_bytes = (limit != nullptr ? std::atoll(limit) : 4096) << 20;
    auto journal = ModelCallJournal::Open(environment_.state_dir + "/journals", request.job_id,
                                          request.fingerprint, max_bytes, absl::Hours(24));
    if (!journal.ok()) {
      RL_LOG(WARNING) << "job " << request.job_id << ": no journal: " << journal.status();
      return nullptr;
    }
    return *std::move(journal);
  }

  // The abort signal of the group's membership at `incarnation` (made on first use: an abort may
  // come before the run has created its communicators, and then ends their rendezvous).
  // Thread-safe.
  std::shared_ptr<comm::AbortSignal> SignalFor(const std::string& group_id, int64_t incarnation) {
    absl::MutexLock lock(&signals_mu_);
    GroupSignal& entry = signals_[group_id];
    if (entry.signal == nullptr || entry.incarnation != incarnation) {
      entry.incarnation = incarnation;
      entry.signal = std::make_shared<comm::AbortSignal>();
    }
    return entry.signal;
  }

 private:
  const worker::ActorEnvironment environment_;
  at::Device device_ = at::kCPU;
  std::unique_ptr<PromptEncoder> prompts_;                 // made once device_ is known
  std::unique_ptr<VideoOutput> video_;                     // likewise
  std::unique_ptr<ImageEncoder> images_;                   // likewise
  int64_t model_memory_limit_ = 0;                         // bytes; 0: no limit but the device's
  std::map<std::string, LoadedModel> models_;              // by files|dtype|placement|group
  std::map<std::string, models::MeasuredModel> measured_;  // by files|dtype|
  std::map<std::string, Membership> groups_;               // by group id
  // Shared with the thread that aborts a run (AbortGroup): by group id.
  struct GroupSignal {
    int64_t incarnation = 0;
    std::shared_ptr<comm::AbortSignal> signal;
  };
  absl::Mutex signals_mu_;
  std::map<std::string, GroupSignal> signals_ ABSL_GUARDED_BY(signals_mu_);
};

DiffusionEngine::DiffusionEngine(const worker::ActorEnvironment& environment)
    : impl_(std::make_unique<Impl>(environment)) {}
DiffusionEngine::~DiffusionEngine() = default;

absl::StatusOr<LoadOutcome> DiffusionEngine::Load(const ModelRequest& model,
                                                  const parallel::MeshShape& mesh,
                                                  const worker::GroupContext& group) {
  try {
    return impl_->Load(model, mesh, group);
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("load: ", error.what_without_backtrace()));
  }
}

absl::StatusOr<SampleOutcome> DiffusionEngine::Sample(const SampleRequest& request,
                                                      const worker::GroupContext& group,
                                                      const UpdateFn& update,
                                                      const CancelledFn& cancelled) {
  try {
    return impl_->Sample(request, group, update, cancelled);
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("sample: ", error.what_without_backtrace()));
  }
}

std::vector<ModelSummary> DiffusionEngine::List() const { return impl_->List(); }

std::vector<ModelSummary> DiffusionEngine::Unload(const std::string& path) {
  return impl_->Unload(path);
}

void DiffusionEngine::GroupLeft(const std::string& group_id) { impl_->DropGroup(group_id); }

void DiffusionEngine::AbortGroup(const worker::GroupContext& group, const absl::Status& why) {
  impl_->SignalFor(group.group_id, group.incarnation)->Fire(why);
}

}  // namespace raylight::actors
