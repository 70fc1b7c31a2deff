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
#include "actors/diffusion/sampling_run.h"
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

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Collectives of one job wait this long for a peer (a dead peer's socket closes sooner).
std::chrono::milliseconds CollectiveTimeout() {
  const char* value = std::getenv("RAYLIGHT_COLLECTIVE_TIMEOUT_MS");
  return std::chrono::milliseconds(value != nullptr ? std::atoll(value) : 300000);
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

struct Membership {
  int64_t incarnation = 0;
  std::unique_ptr<comm::Communicator> world;
  std::map<std::string, std::unique_ptr<parallel::Mesh>> meshes;  // by shape
};

}  // namespace

class DiffusionEngine::Impl final : public SamplingServices {
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
  // "bf16", or "bf16+fp8" for fp8 compute: the loaded copy's numbers, in keys and listings.
  static std::string ComputeLabel(const ModelRequest& request, at::ScalarType dtype) {
    return absl::StrCat(DtypeName(dtype), request.fp8_compute ? "+fp8" : "");
  }

  static std::string ModelPrefix(const ModelRequest& request, at::ScalarType dtype) {
    std::string loras;
    for (const LoraRequest& lora : request.loras) {
      absl::StrAppend(&loras, "+", lora.path, "@", lora.strength);
    }
    return absl::StrCat(absl::StrJoin(request.files, ","), loras, "|", ComputeLabel(request, dtype),
                        "|");
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
    inputs.free_vram_bytes = std::max<int64_t>(1, FreeBytesOnDevice() + HeldDeviceBytes());
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
    int64_t free = FreeBytesOnDevice();
    if (model_memory_limit_ > 0) {
      free = std::min(free, std::max<int64_t>(0, model_memory_limit_ - HeldDeviceBytes()));
    }
    return free;
  }

  // The device's free memory: the driver's plus the allocator's cache (no limit applied).
  int64_t FreeBytesOnDevice() const {
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
    options.fp8_compute = request.fp8_compute;
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
    model.summary.dtype = ComputeLabel(request, *dtype);
    model.summary.placement = placement;
    model.summary.device_bytes = DeviceAllocatedBytes() - device_before;
    model.summary.host_bytes = std::max<int64_t>(0, HostRssBytes() - host_before);
    model.summary.last_used_unix_ms = NowUnixMs();
    RL_LOG(INFO) << "loaded " << model.summary.path << " (" << model.summary.variant << ", "
                 << model.summary.dtype << ", " << model.summary.placement << ") in " << *seconds
                 << " s";
    return &(models_[key] = std::move(model));
  }

  // Wan's own run (prompts, images, experts, video), or the conditioning-file run of every
  // other family.
  absl::StatusOr<SampleOutcome> Sample(const SampleRequest& request,
                                       const worker::GroupContext& group, const UpdateFn& update,
                                       const CancelledFn& cancelled) {
    RL_ASSIGN_OR_RETURN(const models::ModelInfo info, models::InspectModel(request.model.files));
    if (info.family == "wan") return SampleWan(request, group, update, cancelled, *this);
    return SampleConditioned(request, group, update, cancelled, *this);
  }

  // SamplingServices.
  at::Device device() const override { return device_; }
  absl::StatusOr<comm::Communicator*> World(const worker::GroupContext& group) override {
    RL_ASSIGN_OR_RETURN(Membership * membership, MembershipOf(group));
    return membership->world.get();
  }
  absl::StatusOr<parallel::Mesh*> Mesh(const parallel::MeshShape& shape,
                                       const worker::GroupContext& group) override {
    return MeshFor(shape, group);
  }
  absl::StatusOr<EnsuredModel> Ensure(const ModelRequest& request,
                                      const worker::GroupContext& group, const JobShape& shape,
                                      std::vector<std::string> keep) override {
    EnsuredModel ensured;
    RL_ASSIGN_OR_RETURN(LoadedModel * loaded,
                        Ensure(request, group, shape, &ensured.was_resident, &ensured.seconds,
                               &ensured.reason, std::move(keep)));
    ensured.model = loaded->model.get();
    ensured.summary = &loaded->summary;
    ensured.key = loaded->key;
    return ensured;
  }
  SideModels side_models() override { return SideModels{*prompts_, *images_, *video_}; }
  int64_t DeviceFreeBytes() const override { return gpu() ? FreeBytesOnDevice() : 0; }

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
  std::unique_ptr<ModelCallJournal> OpenJournal(const SampleRequest& request,
                                                int rank) const override {
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
