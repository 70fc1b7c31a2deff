// One rank of a parallel Wan job, for the parallel-sampling tests and benchmark: plans the mesh
// (errors before anything starts), joins the group (Gloo or NCCL through a FileStore), loads the
// checkpoint, and runs a forward and/or a KSample on the mesh with inputs every rank regenerates
// from --input_seed. Rank 0 writes the results (safetensors: "forward", "sample") to --out; with
// --time_steps it times that many denoising steps and prints "step_ms <median>", and on a GPU
// "weight_device_bytes <n>": what loading the weights took on rank 0's device.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <set>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "models/core/placement_plan.h"
#include "models/core/safetensors_tensors.h"
#include "models/core/sequence_parallel.h"
#include "models/core/sharded_weights.h"
#include "models/core/swapped_weights.h"
#include "models/parallel/comm/gloo_communicator.h"
#include "models/parallel/comm/nccl_communicator.h"
#include "models/parallel/mesh.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_model.h"
#include "runtime/common/file_store.h"
#include "runtime/common/gpu_info.h"
#include "runtime/common/status_macros.h"
#include "samplers/mesh_sample.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

ABSL_FLAG(int, rank, 0, "this process's rank");
ABSL_FLAG(int, size, 1, "number of ranks");
ABSL_FLAG(std::string, store_dir, "", "FileStore directory shared by the ranks");
ABSL_FLAG(std::string, backend, "gloo", "gloo or nccl");
ABSL_FLAG(std::string, checkpoint, "", "Wan checkpoint (safetensors or GGUF)");
ABSL_FLAG(std::string, lora, "", "a LoRA file applied at load, PATH or PATH:STRENGTH");
ABSL_FLAG(std::string, mesh, "", "dp=..,cfg=..,ring=..,ulysses=.. (omitted axes are 1)");
ABSL_FLAG(std::string, latent, "3,8,12", "latent frames,height,width");
ABSL_FLAG(uint64_t, input_seed, 1, "seed of the random latent and text embeddings");
ABSL_FLAG(uint64_t, seed, 7, "sampling seed");
ABSL_FLAG(int, steps, 4, "sampling steps (0: no sampling run)");
ABSL_FLAG(double, cfg, 4.0, "CFG scale");
ABSL_FLAG(std::string, sampler, "euler_ancestral", "sampler name");
ABSL_FLAG(bool, forward, true, "run one forward (of cond and uncond as one batch of 2)");
ABSL_FLAG(int, repeat_forward, 0, "run the forward this many times more and count differences");
ABSL_FLAG(int, time_steps, 0, "time this many denoising steps (cond and, with cfg != 1, uncond)");
ABSL_FLAG(bool, time_all_to_all, false,
          "with --time_steps: also time one forward's Ulysses all-to-alls alone");
ABSL_FLAG(std::string, dtype, "f32", "f32 or bf16");
ABSL_FLAG(std::string, placement, "resident",
          "resident, fsdp (blocks sharded over the group), fsdp-host (shards in pinned host "
          "memory), swap (layer swap; one rank)");
ABSL_FLAG(bool, keep_encoded, true,
          "fp8 and GGUF weights stay encoded in memory, decoded per block (false: decoded at "
          "load, the same values in the compute dtype)");
ABSL_FLAG(int, prefetch, 1, "fsdp, swap: blocks moved ahead of the running one");
ABSL_FLAG(double, swap_budget, 0.5, "swap: device budget as a fraction of the blocks' bytes");
ABSL_FLAG(bool, swap_sync, false,
          "swap: the naive anchor (pageable memory, copied on the compute stream on demand)");
ABSL_FLAG(std::string, batch_cfg, "auto",
          "cond and uncond in one forward: true, false, or auto (with Ulysses only)");
ABSL_FLAG(bool, interleave, true,
          "batches of 2+: two micro-batches whose blocks interleave (ParallelContext)");
ABSL_FLAG(bool, peer_exchanges, true,
          "pure Ulysses: exchanges as puts into peer memory where the group has it "
          "(ParallelContext; false: all-to-alls on the workspace)");
ABSL_FLAG(int, ulysses_chunks, 1, "head chunks per Ulysses exchange (ParallelContext)");
ABSL_FLAG(bool, overlap_exchanges, true,
          "run Ulysses and Ring exchanges on a side stream (false: on the compute stream)");
ABSL_FLAG(bool, copy_engine, true,
          "NCCL's zero-CTA policy: exchanges on the communicator's workspace use the copy engines");
ABSL_FLAG(std::string, profile_trace, "",
          "after the timed steps, profile one more (Kineto, CPU + CUDA) and write a Chrome trace "
          "to this path + .rank<r>.json");
ABSL_FLAG(std::string, out, "", "results file (rank 0)");
ABSL_FLAG(int, timeout_ms, 120000, "communicator timeout");

namespace raylight {
namespace {

using models::wan::WanInputs;

// This process's anonymous resident memory (heap, not the mapped checkpoint's page cache).
// Bytes the caching allocator has handed out on `device` (0 on the CPU).
int64_t DeviceAllocatedBytes(const at::Device& device) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (device.is_cuda()) {
    at::globalContext().lazyInitDevice(at::kCUDA);  // the allocator exists from here on
    return c10::cuda::CUDACachingAllocator::getDeviceStats(device.index())
        .allocated_bytes[0]
        .current;
  }
#endif
  return 0;
}

// The median wall time of `runs` calls of `work` after one warm-up: the ranks start together
// (a barrier on `world`) and each call counts until `stream_owner`'s queued work and the device
// are done.
template <typename Work>
absl::StatusOr<double> MedianMs(comm::Communicator& world, comm::Communicator& stream_owner,
                                bool gpu, int runs, Work work) {
  std::vector<double> ms;
  for (int i = 0; i < runs + 1; ++i) {
    RL_RETURN_IF_ERROR(world.Barrier());
    const auto start = std::chrono::steady_clock::now();
    RL_RETURN_IF_ERROR(work());
    RL_RETURN_IF_ERROR(stream_owner.Synchronize());
#ifdef RAYLIGHT_HAVE_CUDA
    if (gpu) c10::cuda::device_synchronize();
#endif
    if (i > 0) {
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// One call of `work` under the Kineto profiler (CPU ops and CUDA kernels), written as a Chrome
// trace to `path`.rank<r>.json: where the time of a step goes, kernel by kernel and stream by
// stream (tests/bench/trace_summary.py reads it).
template <typename Work>
absl::Status ProfileOnce(const std::string& path, int rank, comm::Communicator& world, bool gpu,
                         Work work) {
  namespace profiler = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  std::set<ActivityType> activities = {ActivityType::CPU};
  if (gpu) activities.insert(ActivityType::CUDA);
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  profiler::prepareProfiler(config, activities);
  RL_RETURN_IF_ERROR(world.Barrier());
  profiler::enableProfiler(config, activities);
  absl::Status status = work();
#ifdef RAYLIGHT_HAVE_CUDA
  if (gpu) c10::cuda::device_synchronize();
#endif
  std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  RL_RETURN_IF_ERROR(status);
  result->save(absl::StrCat(path, ".rank", rank, ".json"));
  return absl::OkStatus();
}

int Fail(const absl::Status& status, int code = 1) {
  std::cerr << "rank " << absl::GetFlag(FLAGS_rank) << ": " << status << std::endl;
  return code;
}

int Run() {
  const int rank = absl::GetFlag(FLAGS_rank), size = absl::GetFlag(FLAGS_size);
  const bool gpu = absl::GetFlag(FLAGS_backend) == "nccl";
  auto shape = parallel::ParseMeshShape(absl::GetFlag(FLAGS_mesh));
  if (!shape.ok()) return Fail(shape.status(), 2);
  auto opened = models::wan::OpenWanCheckpoint({absl::GetFlag(FLAGS_checkpoint)});
  if (!opened.ok()) return Fail(opened.status(), 2);
  // Everything is checked before the group forms or a weight is read.
  auto plan = parallel::PlanMesh(*shape, size, opened->config.num_heads, absl::GetFlag(FLAGS_cfg));
  if (!plan.ok()) return Fail(plan.status(), 2);
  const std::vector<std::string> dims = absl::StrSplit(absl::GetFlag(FLAGS_latent), ',');
  int64_t f = 0, h = 0, w = 0;
  if (dims.size() != 3 || !absl::SimpleAtoi(dims[0], &f) || !absl::SimpleAtoi(dims[1], &h) ||
      !absl::SimpleAtoi(dims[2], &w)) {
    return Fail(absl::InvalidArgumentError("latent: expected frames,height,width"), 2);
  }
  auto placement_kind = models::ParsePlacement(absl::GetFlag(FLAGS_placement));
  if (!placement_kind.ok()) return Fail(placement_kind.status(), 2);
  for (const auto& note : plan->notes) std::cerr << "rank " << rank << ": " << note << "\n";

  at::Device device = at::kCPU;
#ifdef RAYLIGHT_HAVE_CUDA
  if (gpu) {
    device = at::Device(at::kCUDA, rank);
    c10::cuda::set_device(rank);
  }
#endif
  auto opened_store = FileStore::Open(absl::GetFlag(FLAGS_store_dir));
  if (!opened_store.ok()) return Fail(opened_store.status());
  Store& store = **opened_store;
  const std::chrono::milliseconds timeout(absl::GetFlag(FLAGS_timeout_ms));
  absl::StatusOr<std::unique_ptr<comm::Communicator>> world;
  if (gpu) {
    comm::NcclOptions options;
    options.timeout = timeout;
    options.copy_engine_exchanges = absl::GetFlag(FLAGS_copy_engine);
    world = comm::CreateNcclCommunicator(store, rank, size, rank, options);
  } else {
    comm::GlooOptions options;
    options.timeout = timeout;
    options.hostname = "127.0.0.1";
    world = comm::CreateGlooCommunicator(store, rank, size, options);
  }
  if (!world.ok()) return Fail(world.status());
  auto mesh = parallel::Mesh::Build(**world, *shape);
  if (!mesh.ok()) return Fail(mesh.status());

  models::PlacementOptions placement;
  placement.device = device;
  placement.compute_dtype = absl::GetFlag(FLAGS_dtype) == "bf16" ? at::kBFloat16 : at::kFloat;
  placement.keep_fp8 = absl::GetFlag(FLAGS_keep_encoded);
  const int64_t anon_before_load = ProcessStatusBytes("RssAnon");
  const int64_t device_before_load = DeviceAllocatedBytes(device);
  const std::vector<std::string> files = {absl::GetFlag(FLAGS_checkpoint)};
  std::vector<models::LoraFile> loras;
  if (const std::string lora = absl::GetFlag(FLAGS_lora); !lora.empty()) {
    const size_t colon = lora.rfind(':');
    double strength = 1.0;
    if (colon != std::string::npos && absl::SimpleAtod(lora.substr(colon + 1), &strength)) {
      loras.push_back({lora.substr(0, colon), strength});
    } else {
      loras.push_back({lora, 1.0});
    }
  }
  absl::StatusOr<models::wan::LoadedWan> loaded;
  if (*placement_kind == models::Placement::kFsdp ||
      *placement_kind == models::Placement::kFsdpHost) {
    models::ShardOptions shards;
    shards.prefetch = absl::GetFlag(FLAGS_prefetch);
    shards.host_shards = *placement_kind == models::Placement::kFsdpHost;
    loaded = models::wan::LoadWanSharded(files, placement, **world, shards, loras);
  } else if (*placement_kind == models::Placement::kLayerSwap) {
    models::SwapOptions swap;
    swap.budget_fraction = absl::GetFlag(FLAGS_swap_budget);
    swap.prefetch = absl::GetFlag(FLAGS_prefetch);
    swap.synchronous = absl::GetFlag(FLAGS_swap_sync);
    loaded = models::wan::LoadWanSwapped(files, placement, swap, loras);
  } else {
    loaded = models::wan::LoadWanResident(files, placement, loras);
  }
  if (!loaded.ok()) return Fail(loaded.status());
  const models::wan::WanConfig& config = loaded->config;
  if (rank == 0) {
    if (gpu) {
      std::cout << "weight_device_bytes " << DeviceAllocatedBytes(device) - device_before_load
                << std::endl;
    }
    std::cout << "load_peak_rss_bytes " << ProcessStatusBytes("VmHWM") << std::endl;
    if (auto* sharded = dynamic_cast<models::ShardedWeights*>(loaded->weights.get())) {
      std::cout << "gather_buffer_bytes " << sharded->pool_bytes() << std::endl;
    }
    if (auto* swapped = dynamic_cast<models::SwappedWeights*>(loaded->weights.get())) {
      std::cout << "swap_resident_blocks "
                << std::count(swapped->plan().resident.begin(), swapped->plan().resident.end(),
                              true)
                << " of " << swapped->num_blocks() << ", buffers " << swapped->plan().buffers
                << std::endl;
    }
  }

  // Inputs every rank draws identically.
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(absl::GetFlag(FLAGS_input_seed));
  const at::TensorOptions cpu = at::TensorOptions().dtype(at::kFloat);
  at::Tensor x = at::randn({1, config.in_channels, f, h, w}, generator, cpu).to(device);
  at::Tensor positive = at::randn({1, 11, config.text_dim}, generator, cpu).to(device);
  at::Tensor negative = at::randn({1, 6, config.text_dim}, generator, cpu).to(device);
  models::ParallelContext sequence = (*mesh)->sequence_context();
  sequence.ulysses_chunks = absl::GetFlag(FLAGS_ulysses_chunks);
  sequence.overlap_exchanges = absl::GetFlag(FLAGS_overlap_exchanges);
  sequence.interleave_micro_batches = absl::GetFlag(FLAGS_interleave);
  sequence.peer_exchanges = absl::GetFlag(FLAGS_peer_exchanges);
  const std::string batch_flag = absl::GetFlag(FLAGS_batch_cfg);
  if (batch_flag != "auto" && batch_flag != "true" && batch_flag != "false") {
    return Fail(absl::InvalidArgumentError("--batch_cfg: auto, true or false, not " + batch_flag));
  }
  std::optional<bool> batch_cfg;
  if (batch_flag != "auto") batch_cfg = batch_flag == "true";

  samplers::ModelFn model = [&](const at::Tensor& input, double timestep,
                                samplers::Branch branch) -> absl::StatusOr<at::Tensor> {
    auto inputs = [&](bool cond) {
      WanInputs in;
      in.x = input;
      in.t = at::full({1}, timestep, at::TensorOptions().dtype(at::kFloat).device(device));
      in.context = cond ? positive : negative;
      return in;
    };
    return models::wan::WanForward(config,
                                   samplers::InputsFor(branch, inputs, models::wan::BatchInputs),
                                   sequence, *loaded->weights);
  };

  const samplers::ModelSampling sampling = samplers::ModelSampling::DiscreteFlow(5.0);  // Wan's
  std::vector<std::pair<std::string, at::Tensor>> results;
  results.emplace_back("load_anon_bytes",
                       at::tensor({ProcessStatusBytes("RssAnon") - anon_before_load}, at::kLong));
  if (auto* sharded = dynamic_cast<models::ShardedWeights*>(loaded->weights.get())) {
    results.emplace_back("shard_bytes", at::tensor({sharded->shard_bytes()}, at::kLong));
    results.emplace_back("pool_bytes", at::tensor({sharded->pool_bytes()}, at::kLong));
  }
  if (absl::GetFlag(FLAGS_forward)) {
    auto out = model(x, 370.0, samplers::Branch::kBoth);
    if (!out.ok()) return Fail(out.status());
    results.emplace_back("forward", out->to(at::kCPU));
    // The same forward again: a missing order between a side stream's gathers or copies and the
    // compute that reads them shows up as a difference between runs.
    int64_t mismatches = 0;
    for (int run = 0; run < absl::GetFlag(FLAGS_repeat_forward); ++run) {
      auto again = model(x, 370.0, samplers::Branch::kBoth);
      if (!again.ok()) return Fail(again.status());
      if (!at::equal(again->to(at::kCPU), results.back().second)) ++mismatches;
    }
    results.emplace_back("repeat_mismatches", at::tensor({mismatches}, at::kLong));
  }
  if (const int runs = absl::GetFlag(FLAGS_time_steps); runs > 0) {
    // One denoising step as the sampler sees it: the (cfg-split) denoiser evaluation.
    samplers::Denoiser step =
        samplers::MeshDenoiser(model, sampling, absl::GetFlag(FLAGS_cfg), **mesh, *plan, batch_cfg);
    auto step_ms = MedianMs(**world, **world, gpu, runs, [&] { return step(x, 0.6).status(); });
    if (!step_ms.ok()) return Fail(step_ms.status());
    if (rank == 0) std::cout << "step_ms " << *step_ms << std::endl;
    if (const std::string trace = absl::GetFlag(FLAGS_profile_trace); !trace.empty()) {
      if (auto profiled =
              ProfileOnce(trace, rank, **world, gpu, [&] { return step(x, 0.6).status(); });
          !profiled.ok()) {
        return Fail(profiled);
      }
    }
    if (absl::GetFlag(FLAGS_time_all_to_all) && sequence.ulysses != nullptr) {
      // The exchanges of one forward without the compute: q, k, v there and the output back,
      // per block, on this rank's [1, L/P, heads, head_dim] chunks packed in the communicator's
      // workspace, as the attention runs them (on NCCL: the copy engines).
      const int64_t tokens = f / config.patch_t * (h / config.patch_h) * (w / config.patch_w);
      const int64_t chunk =
          models::PaddedLength(tokens, sequence.sequence_degree()) / sequence.sequence_degree();
      const int64_t bytes =
          chunk * config.num_heads * config.head_dim() * c10::elementSize(placement.compute_dtype);
      auto workspace = sequence.ulysses->Workspace(2 * bytes);
      if (!workspace.ok()) return Fail(workspace.status());
      const int ranks = sequence.ulysses_degree;
      at::Tensor sent = workspace->narrow(0, 0, bytes).view({ranks, -1});
      at::Tensor received = workspace->narrow(0, bytes, bytes).view({ranks, -1});
      auto a2a_ms = MedianMs(**world, *sequence.ulysses, gpu, 3, [&]() -> absl::Status {
        for (int op = 0; op < 4 * config.num_layers; ++op) {
          RL_RETURN_IF_ERROR(sequence.ulysses->AllToAllInto(sent, received));
        }
        return absl::OkStatus();
      });
      if (!a2a_ms.ok()) return Fail(a2a_ms.status());
      if (rank == 0) std::cout << "all_to_all_ms_per_forward " << *a2a_ms << std::endl;
    }
  }
  if (absl::GetFlag(FLAGS_steps) > 0) {
    samplers::KSamplerOptions options;
    options.seed = absl::GetFlag(FLAGS_seed);
    options.steps = absl::GetFlag(FLAGS_steps);
    options.cfg = absl::GetFlag(FLAGS_cfg);
    options.batch_cfg = batch_cfg;
    options.sampler = absl::GetFlag(FLAGS_sampler);
    options.scheduler = "simple";
    auto out = samplers::KSampleOnMesh(model, sampling, at::zeros_like(x), options, **mesh, *plan);
    if (!out.ok()) return Fail(out.status());
    results.emplace_back("sample", out->to(at::kCPU));
  }
  if (rank == 0 && !absl::GetFlag(FLAGS_out).empty()) {
    if (auto written = models::WriteTensors(absl::GetFlag(FLAGS_out), results); !written.ok()) {
      return Fail(written);
    }
  }
  if (auto done = (*world)->Barrier(); !done.ok()) return Fail(done);
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return raylight::Run();
}
