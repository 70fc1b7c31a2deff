#include "actors/diffusion/diffusion_job_kind.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "actors/diffusion/component_files.h"
#include "actors/diffusion/mesh_spec.h"
#include "actors/diffusion/step_cache_checks.h"
#include "models/core/image_file.h"
#include "models/core/placement_plan.h"
#include "models/core/safetensors.h"
#include "models/family/model_info.h"
#include "models/parallel/mesh_plan.h"
#include "models/wan/wan_inspect.h"
#include "raylight/v1/diffusion.pb.h"
#include "runtime/common/status_macros.h"
#include "samplers/custom_sigmas.h"
#include "samplers/sampler_names.h"

namespace raylight::actors {
namespace {

constexpr char kActorClass[] = "DiffusionActor";

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// Prefixes an error from a checker with the field it concerns, keeping its code.
absl::Status InField(const std::string& field, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(field, ": ", status.message()));
}

// What a job carries that this head does not read travels in its plan to the state database
// and to every rank: bounded (issue #23, item 10: 60 MB of unknown fields, or of safetensors
// metadata, were accepted and stored).
constexpr size_t kMaxUnreadBytes = 64 << 10;
// A prompt is text: 64 KiB of it is thousands of tokens, past what the DiT takes anyway.
constexpr size_t kMaxPromptBytes = 64 << 10;
// A video job's frames when it gives none (SampleJob.frames 0): Wan's 5 seconds at 16 fps.
constexpr int kDefaultVideoFrames = 81;
// A start image's file: a 4K PNG is a few MB.
constexpr size_t kMaxImageBytes = 32 << 20;

// The payload as a SampleJob, refused when it is not one or carries more than kMaxUnreadBytes
// of fields this head does not know (a newer client's few are kept and passed on).
absl::StatusOr<v1::SampleJob> ParseSampleJob(absl::string_view payload) {
  v1::SampleJob job;
  if (!job.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Invalid("spec.payload", "not a serialized raylight.v1.SampleJob");
  }
  v1::SampleJob known = job;
  known.DiscardUnknownFields();
  const size_t unknown = payload.size() - std::min(payload.size(), known.ByteSizeLong());
  if (unknown > kMaxUnreadBytes) {
    return Invalid("spec.payload", absl::StrCat(unknown, " bytes of fields this head does not ",
                                                "know; at most ", kMaxUnreadBytes));
  }
  return job;
}

// The metadata of a safetensors payload (conditioning, latent) is not read, only stored: bounded.
absl::Status CheckPayloadMetadata(const std::string& field, const std::string& bytes) {
  if (bytes.empty()) return absl::OkStatus();
  auto header = models::ParseSafetensors(bytes, field);
  if (!header.ok()) return absl::OkStatus();  // the field's own check says what is wrong
  size_t total = 0;
  for (const auto& [key, value] : header->metadata) total += key.size() + value.size();
  if (total <= kMaxUnreadBytes) return absl::OkStatus();
  return Invalid(
      field, absl::StrCat("safetensors metadata of ", total, " bytes; at most ", kMaxUnreadBytes));
}

// A starting latent's noise mask (samplers/denoise_mask.h): what PrepareDenoiseMask accepts,
// checked from the file's header. A mask at pixel size (4x the frames, 16x each side at most) is
// resized; anything larger is refused before a worker reads it.
absl::Status CheckNoiseMask(const models::StTensorInfo& mask, const models::wan::WanConfig& config,
                            int64_t frames, int64_t height, int64_t width) {
  if (config.i2v()) {
    return Invalid("latent", absl::StrCat("a 'noise_mask' with ", config.name,
                                          " (image-to-video takes its mask from the "
                                          "conditioning) is not supported"));
  }
  if (mask.dtype != models::StDtype::kF32 && mask.dtype != models::StDtype::kF16 &&
      mask.dtype != models::StDtype::kBF16 && mask.dtype != models::StDtype::kF64) {
    return Invalid("latent", absl::StrCat("'noise_mask' is ", models::StDtypeName(mask.dtype),
                                          "; a mask is F32, F16, BF16 or F64"));
  }
  const std::vector<int64_t>& shape = mask.shape;
  const auto shape_text = [&] { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); };
  int64_t elements = 1;
  for (int64_t side : shape) elements *= side;
  if (shape.size() < 2 || shape.size() > 5 || elements == 0) {
    return Invalid("latent", absl::StrCat("'noise_mask' is ", shape_text(),
                                          "; a video mask is [B, 1 or C, F, H, W] or [F, H, W]"));
  }
  if (shape.size() == 5 && shape[1] != 1 && shape[1] != config.out_channels) {
    return Invalid("latent", absl::StrCat("'noise_mask' has ", shape[1], " channels; ", config.name,
                                          " has ", config.out_channels));
  }
  if (shape[shape.size() - 2] > 16 * height || shape.back() > 16 * width ||
      elements > 64 * 4 * frames * height * width * config.out_channels) {
    return Invalid("latent",
                   absl::StrCat("'noise_mask' ", shape_text(), " is larger than the ",
                                "latent's pixels (", frames, "x", height, "x", width, " latent)"));
  }
  return absl::OkStatus();
}

struct CommonPlan {
  std::vector<std::string> files;
  models::ModelInfo info;
  models::wan::WanConfig config;  // family "wan" (its own plan reads more than ModelInfo)
  parallel::MeshShape mesh;
  bool gpu = false;
};

// Model, dtype, placement, mesh and workers: what both kinds check.
absl::StatusOr<CommonPlan> PlanCommon(const v1::SampleJob& job,
                                      const std::vector<std::string>& roots,
                                      const v1::ClusterState& cluster) {
  CommonPlan plan;
  auto files = ResolveModel(job.model(), roots);
  if (!files.ok()) return files.status();
  plan.files = *std::move(files);
  auto info = models::InspectModel(plan.files);
  if (!info.ok()) return InField("model", info.status());
  plan.info = *info;
  if (info->family == "wan") {
    auto config = models::wan::InspectWanCheckpoint(plan.files);
    if (!config.ok()) return InField("model", config.status());
    plan.config = *config;
  }
  const std::vector<std::string> dtypes = {"", "auto", "bf16", "f16", "f32"};
  if (std::find(dtypes.begin(), dtypes.end(), job.dtype()) == dtypes.end()) {
    return Invalid("dtype", absl::StrCat("unknown '", job.dtype(), "' (auto, bf16, f16, f32)"));
  }
  if (!job.placement().empty() && job.placement() != "auto") {
    if (auto placement = models::ParsePlacement(job.placement()); !placement.ok()) {
      return InField("placement", placement.status());
    }
  }
  if (!job.compute().empty() && job.compute() != "default") {
    if (job.compute() != "fp8") {
      return Invalid("compute", absl::StrCat("unknown '", job.compute(), "' (default, fp8)"));
    }
    if (!plan.info.computes_fp8) {
      return Invalid("compute",
                     absl::StrCat("fp8: ", plan.info.variant, "'s forward has no fp8 path"));
    }
  }
  if (!(job.swap_budget() >= 0 && job.swap_budget() <= 1)) {  // NaN fails too
    return Invalid(
        "swap_budget",
        absl::StrCat(job.swap_budget(), " is not a fraction of the blocks' bytes in (0, 1]"));
  }
  const v1::MeshSpec& mesh = job.mesh();
  for (auto [name, degree] :
       {std::pair{"mesh.dp", mesh.dp()}, std::pair{"mesh.cfg", mesh.cfg()},
        std::pair{"mesh.ring", mesh.ring()}, std::pair{"mesh.ulysses", mesh.ulysses()}}) {
    if (degree < 0 || degree > 64)
      return Invalid(name, absl::StrCat(degree, " is outside [0, 64]"));
  }
  plan.mesh = MeshShapeOf(mesh);
  const int world = plan.mesh.world();
  if (world > 64)
    return Invalid("mesh", absl::StrCat(plan.mesh.ToString(), " is ", world, " ranks"));
  if (plan.info.guidance_distilled && plan.mesh.cfg > 1) {
    return Invalid("mesh.cfg",
                   absl::StrCat(plan.info.variant,
                                " is guidance-distilled (its guidance strength is an input, run "
                                "at cfg 1): there is no unconditional branch to split off"));
  }
  auto planned = parallel::PlanMesh(plan.mesh, world, plan.info.num_heads, job.cfg());
  if (!planned.ok()) return planned.status();
  if ((job.placement() == "fsdp" || job.placement() == "fsdp-host") && world < 2) {
    return Invalid("placement", absl::StrCat(job.placement(),
                                             " shards over the job's ranks: it needs a mesh of 2 "
                                             "or more"));
  }
  int gpu_workers = 0, cpu_workers = 0;
  for (const v1::WorkerInfo& worker : cluster.workers()) {
    if (!worker.alive() || std::find(worker.actor_classes().begin(), worker.actor_classes().end(),
                                     kActorClass) == worker.actor_classes().end()) {
      continue;
    }
    (worker.kind() == v1::WORKER_KIND_GPU ? gpu_workers : cpu_workers)++;
  }
  if (!job.cpu() && gpu_workers >= world) {
    plan.gpu = true;
  } else if (cpu_workers >= world) {
    plan.gpu = false;
  } else {
    return absl::FailedPreconditionError(absl::StrCat(
        "mesh: ", plan.mesh.ToString(), " needs ", world, " workers; the cluster has ", gpu_workers,
        " GPU and ", cpu_workers, " CPU workers that host ", kActorClass));
  }
  if (!job.attention().empty() && job.attention() != "default") {
    if (job.attention() != "fp8") {
      return Invalid("attention", absl::StrCat("unknown '", job.attention(), "' (default, fp8)"));
    }
    if (plan.mesh.ring > 1) {
      return Invalid("attention",
                     absl::StrCat("fp8 runs on one process or Ulysses; mesh ", plan.mesh.ToString(),
                                  " has Ring, whose merge needs what the fp8 kernel does not "
                                  "return"));
    }
    if (!plan.gpu) {
      return Invalid("attention",
                     "fp8 runs on GPU workers (Hopper or newer); this job would run "
                     "on CPU workers");
    }
  }
  return plan;
}

void FillPlan(const CommonPlan& common, const v1::SampleJob& job, v1::JobPlan& plan) {
  plan.set_actor_class(kActorClass);
  plan.set_group_size(common.mesh.world());
  if (common.gpu) {
    plan.mutable_resources()->set_gpu(1);
  } else {
    plan.mutable_resources()->set_cpu(1);
  }
  // Jobs on the same model, dtype and placement find it resident on the group that ran the last.
  plan.set_affinity(absl::StrCat(absl::StrJoin(common.files, ","), "|", job.dtype(), "|",
                                 job.placement(), "|", job.compute()));
}

// The low-noise expert, when the job names one: its files, checked against the high-noise
// expert's architecture, and the boundary.
// A job's LoRAs (`field`: "loras" or "low_noise_loras") resolved in the model roots: one file
// each, a safetensors header that parses, a finite strength. Errors name the entry.
constexpr int kMaxLoras = 16;
constexpr double kMaxLoraStrength = 100;
absl::StatusOr<std::vector<std::string>> ResolveLoras(
    const std::string& field, const google::protobuf::RepeatedPtrField<v1::LoraRef>& loras,
    const std::vector<std::string>& roots) {
  if (loras.size() > kMaxLoras) {
    return Invalid(field, absl::StrCat(loras.size(), " LoRAs; at most ", kMaxLoras));
  }
  std::vector<std::string> files;
  for (int i = 0; i < loras.size(); ++i) {
    const std::string entry = absl::StrCat(field, "[", i, "]");
    const v1::LoraRef& lora = loras[i];
    if (!std::isfinite(lora.strength()) || std::abs(lora.strength()) > kMaxLoraStrength) {
      return Invalid(entry + ".strength",
                     absl::StrCat(lora.strength(), " is outside [-", kMaxLoraStrength, ", ",
                                  kMaxLoraStrength, "]"));
    }
    auto resolved = ResolveModel(lora.name(), roots);
    if (!resolved.ok()) return InField(entry + ".name", resolved.status());
    if (resolved->size() != 1) {
      return Invalid(entry + ".name", absl::StrCat("'", lora.name(),
                                                   "' is a directory; a LoRA "
                                                   "is one .safetensors file"));
    }
    auto file = models::SafetensorsFile::Open(resolved->front());
    if (!file.ok()) return InField(entry + ".name", file.status());
    files.push_back(resolved->front());
  }
  return files;
}

absl::StatusOr<std::vector<std::string>> PlanLowNoiseExpert(const v1::SampleJob& job,
                                                            const std::vector<std::string>& roots,
                                                            const CommonPlan& high) {
  if (!std::isfinite(job.boundary()) || job.boundary() < 0 || job.boundary() >= 1) {
    return Invalid("boundary", absl::StrCat(job.boundary(),
                                            " is not a sigma in (0, 1) (0: Wan 2.2's default)"));
  }
  if (job.low_noise_model().empty()) {
    if (job.boundary() != 0) return Invalid("boundary", "given without a low_noise_model");
    return std::vector<std::string>();
  }
  auto files = ResolveModel(job.low_noise_model(), roots);
  if (!files.ok()) return InField("low_noise_model", files.status());
  auto config = models::wan::InspectWanCheckpoint(*files);
  if (!config.ok()) return InField("low_noise_model", config.status());
  if (!config->SameArchitecture(high.config)) {
    return Invalid("low_noise_model",
                   absl::StrCat("'", job.low_noise_model(), "' is ", config->name,
                                "; the high-noise expert is ", high.config.name,
                                " (Wan 2.2's two experts share one architecture)"));
  }
  return files;
}

// The images a job gives with its prompt (SampleJob.image, end_image): which models take which,
// and that the bytes are a PNG or JPEG of a size a worker will decode (the header only: this
// runs on the head's I/O thread; pixels that do not decode fail the job on the worker).
absl::Status CheckImages(const v1::SampleJob& job, const models::wan::WanConfig& config) {
  for (auto [field, bytes] : {std::pair{"image", &job.image()}, {"end_image", &job.end_image()}}) {
    if (bytes->empty()) continue;
    const bool end = std::string_view(field) == "end_image";
    if (!config.i2v() && (end || !config.per_token_timesteps())) {
      return Invalid(field,
                     absl::StrCat(config.name, " takes no ", end ? "end" : "start", " image (",
                                  end ? "an I2V model does" : "I2V and TI2V models do", ")"));
    }
    if (job.prompt().empty()) {
      return Invalid(field,
                     "given without a prompt (images go with prompts; a `positive` file "
                     "carries its own image inputs)");
    }
    if (bytes->size() > kMaxImageBytes) {
      return Invalid(field, absl::StrCat(bytes->size(), " bytes; at most ", kMaxImageBytes));
    }
    auto header = models::ReadImageHeader(*bytes);
    if (!header.ok()) return Invalid(field, std::string(header.status().message()));
  }
  if (config.per_token_timesteps() && !job.image().empty() && !job.latent().empty()) {
    return Invalid("latent",
                   absl::StrCat(config.name, " makes its starting latent from `image`: give one"));
  }
  return absl::OkStatus();
}

// What every family's job checks the same way: the schedule, the sampler and its numbers, seeds.
absl::Status CheckSamplerSettings(const v1::SampleJob& job, const SampleLimits& limits) {
  // An explicit schedule replaces steps, scheduler and denoise (ComfyUI's SamplerCustom).
  if (job.sigmas_size() > 0) {
    RL_RETURN_IF_ERROR(samplers::CheckCustomSigmas(
        std::vector<double>(job.sigmas().begin(), job.sigmas().end()), limits.max_steps));
  } else if (job.steps() < 1 || job.steps() > limits.max_steps) {
    return Invalid("steps", absl::StrCat(job.steps(), " is outside [1, ", limits.max_steps, "]"));
  }
  for (auto [name, step] : {std::pair{"start_step", job.start_step()},
                            std::pair{"end_step", job.has_end_step() ? job.end_step() : 0}}) {
    if (step < 0 || step > samplers::kMaxScheduleSteps) {
      return Invalid(name,
                     absl::StrCat(step, " is outside [0, ", samplers::kMaxScheduleSteps, "]"));
    }
  }
  if (!std::isfinite(job.cfg()) || job.cfg() < 0 || job.cfg() > 100) {
    return Invalid("cfg", absl::StrCat(job.cfg(), " is outside [0, 100]"));
  }
  if (!std::isfinite(job.shift()) || job.shift() < 0 || job.shift() > 100) {
    return Invalid("shift", absl::StrCat(job.shift(), " is outside [0, 100] (0: the default)"));
  }
  if (!std::isfinite(job.denoise()) || job.denoise() < 0 || job.denoise() > 1) {
    return Invalid("denoise", absl::StrCat(job.denoise(), " is outside [0, 1] (0: 1)"));
  }
  if (!job.sampler().empty() && !samplers::IsSamplerName(job.sampler())) {
    return Invalid("sampler", absl::StrCat("unknown '", job.sampler(), "' (",
                                           absl::StrJoin(samplers::SamplerNames(), ", "), ")"));
  }
  if (!job.scheduler().empty() &&
      std::find(samplers::kSchedulerNames.begin(), samplers::kSchedulerNames.end(),
                job.scheduler()) == samplers::kSchedulerNames.end()) {
    return Invalid("scheduler", absl::StrCat("unknown '", job.scheduler(), "' (",
                                             absl::StrJoin(samplers::kSchedulerNames, ", "), ")"));
  }
  if (job.preview_every() < 0) return Invalid("preview_every", "must be 0 or more");
  if (job.seeds_size() > 0 && job.seeds_size() != std::max(job.mesh().dp(), 1)) {
    return Invalid("seeds", absl::StrCat(job.seeds_size(), " given for ",
                                         std::max(job.mesh().dp(), 1), " data-parallel ranks"));
  }
  return absl::OkStatus();
}

absl::Status CheckSampling(const v1::SampleJob& job, const models::wan::WanConfig& config,
                           const SampleLimits& limits, int64_t* tokens) {
  RL_RETURN_IF_ERROR(CheckSamplerSettings(job, limits));
  // The latent: given, or made from the pixel size.
  int64_t frames = 0, height = 0, width = 0;
  if (!job.latent().empty()) {
    auto header = models::ParseSafetensors(job.latent(), "latent");
    if (!header.ok()) return InField("latent", header.status());
    const models::StTensorInfo* latent = header->Find("latent_tensor");
    if (latent == nullptr) return Invalid("latent", "no 'latent_tensor' (a ComfyUI .latent file)");
    if (latent->dtype != models::StDtype::kF32 && latent->dtype != models::StDtype::kF16 &&
        latent->dtype != models::StDtype::kBF16 && latent->dtype != models::StDtype::kF64) {
      return Invalid("latent",
                     absl::StrCat("'latent_tensor' is ", models::StDtypeName(latent->dtype),
                                  "; a LATENT is F32, F16, BF16 or F64"));
    }
    std::vector<int64_t> shape = latent->shape;
    if (shape.size() == 5 && shape[0] == 1) shape.erase(shape.begin());
    if (shape.size() != 4 || shape[0] != config.out_channels) {
      return Invalid("latent",
                     absl::StrCat("'latent_tensor' is [", absl::StrJoin(latent->shape, ", "), "]; ",
                                  config.name, " takes [1, ", config.out_channels, ", F, H, W]"));
    }
    frames = shape[1];
    height = shape[2];
    width = shape[3];
    if (const models::StTensorInfo* mask = header->Find("noise_mask")) {
      if (auto status = CheckNoiseMask(*mask, config, frames, height, width); !status.ok()) {
        return status;
      }
    }
  } else {
    const int spatial = static_cast<int>(config.vae_spatial());
    const int multiple = spatial * static_cast<int>(config.patch_h);
    for (auto [name, side] : {std::pair{"width", job.width()}, std::pair{"height", job.height()}}) {
      if (side < multiple || side > limits.max_side || side % multiple != 0) {
        return Invalid(name, absl::StrCat(side, " must be a multiple of ", multiple, " in [",
                                          multiple, ", ", limits.max_side, "]"));
      }
    }
    if (job.frames() < 1 || job.frames() > limits.max_frames || (job.frames() - 1) % 4 != 0) {
      return Invalid("frames",
                     absl::StrCat(job.frames(), " must be 4k+1 in [1, ", limits.max_frames, "]"));
    }
    frames = (job.frames() - 1) / 4 + 1;
    height = job.height() / spatial;
    width = job.width() / spatial;
  }
  if (frames % config.patch_t != 0 || height % config.patch_h != 0 || width % config.patch_w != 0 ||
      frames < 1) {
    return Invalid("latent", absl::StrCat(frames, "x", height, "x", width,
                                          " does not divide into the model's patches"));
  }
  *tokens = frames / config.patch_t * (height / config.patch_h) * (width / config.patch_w);
  if (*tokens > limits.max_tokens) {
    return Invalid(job.latent().empty() ? "frames" : "latent",
                   absl::StrCat(*tokens, " tokens exceed the limit of ", limits.max_tokens));
  }
  for (auto [field, text] :
       {std::pair{"prompt", &job.prompt()}, std::pair{"negative_prompt", &job.negative_prompt()}}) {
    if (text->size() > kMaxPromptBytes) {
      return Invalid(field, absl::StrCat(text->size(), " bytes; at most ", kMaxPromptBytes));
    }
  }
  if (auto status = CheckImages(job, config); !status.ok()) return status;
  if (!job.prompt().empty()) {
    if (!job.positive().empty()) return Invalid("prompt", "give prompt or positive, not both");
    if (config.i2v() && job.image().empty() && job.end_image().empty()) {
      return Invalid("image", absl::StrCat("required: ", config.name,
                                           " takes a start image with a prompt (or give "
                                           "`positive` with its image inputs)"));
    }
  } else if (auto status =
                 models::wan::CheckWanConditioningBytes(job.positive(), "positive", config);
             !status.ok()) {
    return InField("positive", job.positive().empty()
                                   ? absl::InvalidArgumentError("required (or a prompt)")
                                   : status);
  }
  if (job.has_negative_prompt() && !job.negative().empty()) {
    return Invalid("negative_prompt", "give negative_prompt or negative, not both");
  }
  if (job.cfg() != 1.0 && job.negative().empty()) {
    if (job.prompt().empty() && !job.has_negative_prompt()) {
      return Invalid("negative", "required when cfg != 1 (the unconditional prediction uses it)");
    }
    if (config.i2v() && job.image().empty() && job.end_image().empty()) {
      return Invalid("negative_prompt",
                     absl::StrCat(config.name, " takes `negative` conditioning"));
    }
  } else if (job.cfg() != 1.0) {
    if (auto status = models::wan::CheckWanConditioningBytes(job.negative(), "negative", config);
        !status.ok()) {
      return InField("negative", status);
    }
  }
  return absl::OkStatus();
}

// The decoded output a job asks for (SampleJob.output, fps, crf); nothing is resolved here.
absl::Status CheckOutput(const v1::SampleJob& job) {
  const std::string& output = job.output();
  if (!output.empty() && output != "latent" && output != "video" && output != "webp" &&
      output != "frames") {
    return Invalid("output", absl::StrCat("'", output.substr(0, 64),
                                          "' is not one of latent, video, webp, frames"));
  }
  if (!(job.fps() == 0 || (job.fps() > 0 && job.fps() <= 240))) {
    return Invalid("fps", absl::StrCat(job.fps(), " is not in (0, 240] (0: the model's own)"));
  }
  if (job.has_crf() && (job.crf() < 0 || job.crf() > 51)) {
    return Invalid("crf", absl::StrCat(job.crf(), " is not in [0, 51]"));
  }
  return absl::OkStatus();
}

bool DecodesOutput(const v1::SampleJob& job) {
  return !job.output().empty() && job.output() != "latent";
}

// A job of any family but Wan: conditioning files in (checked by the family's
// ModelInfo.check_conditioning), a LATENT out; what such jobs cannot have yet is refused by
// name. An image of width x height (and frames, for a video family) or a starting LATENT.
absl::Status CheckConditionedJob(const v1::SampleJob& job, const models::ModelInfo& info,
                                 const SampleLimits& limits, int64_t* tokens) {
  RL_RETURN_IF_ERROR(CheckSamplerSettings(job, limits));
  const std::string not_yet =
      absl::StrCat("not available for ", info.family,
                   " models yet (they take `positive` conditioning files and return a latent)");
  for (const auto& [field, given] :
       {std::pair{"prompt", !job.prompt().empty()},
        std::pair{"negative_prompt", job.has_negative_prompt()},
        std::pair{"image", !job.image().empty()}, std::pair{"end_image", !job.end_image().empty()},
        std::pair{"low_noise_model", !job.low_noise_model().empty()},
        std::pair{"loras", job.loras_size() > 0 && !info.merges_loras},
        std::pair{"text_encoder", !job.text_encoder().empty()},
        std::pair{"vae", !job.vae().empty() && info.vae.empty()},
        std::pair{"clip_vision", !job.clip_vision().empty()},
        std::pair{"output",
                  !job.output().empty() && job.output() != "latent" && info.vae.empty()}}) {
    if (given) return Invalid(field, not_yet);
  }
  RL_RETURN_IF_ERROR(CheckOutput(job));
  const std::string layout = info.video ? "F, H, W" : "H, W";
  int64_t frames = 1, height = 0, width = 0;
  if (!job.latent().empty()) {
    auto header = models::ParseSafetensors(job.latent(), "latent");
    if (!header.ok()) return InField("latent", header.status());
    const models::StTensorInfo* latent = header->Find("latent_tensor");
    if (latent == nullptr) return Invalid("latent", "no 'latent_tensor' (a ComfyUI .latent file)");
    if (header->Find("noise_mask") != nullptr) {
      return Invalid("latent", absl::StrCat("a 'noise_mask' with a ", info.family,
                                            " model is not supported yet"));
    }
    std::vector<int64_t> shape = latent->shape;
    const size_t sides = info.video ? 4 : 3;  // C and the sides, without the batch
    if (shape.size() == sides + 1 && shape[0] == 1) {
      shape.erase(shape.begin());
    } else if (info.video && shape.size() == 4 && shape[0] == 1 &&
               shape[1] == info.latent_channels) {
      shape = {shape[1], 1, shape[2], shape[3]};  // an image LATENT: one frame (ComfyUI's too)
    }
    if (shape.size() != sides || shape[0] != info.latent_channels) {
      return Invalid(
          "latent",
          absl::StrCat("'latent_tensor' is [", absl::StrJoin(latent->shape, ", "), "]; ",
                       info.variant, " takes [1, ", info.latent_channels, ", ", layout, "]"));
    }
    if (info.video) frames = shape[1];
    if (info.max_frames > 0 && frames > info.max_frames) {
      return Invalid("latent", absl::StrCat(info.variant, " makes images: the latent has ", frames,
                                            " frames"));
    }
    height = shape[sides - 2];
    width = shape[sides - 1];
    const int64_t max_side = limits.max_side / info.spatial_factor;
    if (frames < 1 || height < 1 || width < 1 || height > max_side || width > max_side) {
      return Invalid("latent",
                     absl::StrCat(height, "x", width, " is outside [1, ", max_side, "] a side"));
    }
  } else {
    const int64_t multiple = info.spatial_factor * info.patch_h;
    for (auto [name, side] : {std::pair{"width", job.width()}, std::pair{"height", job.height()}}) {
      if (side < multiple || side > limits.max_side || side % multiple != 0) {
        return Invalid(name, absl::StrCat(side, " must be a multiple of ", multiple, " in [",
                                          multiple, ", ", limits.max_side, "]"));
      }
    }
    height = job.height() / info.spatial_factor;
    width = job.width() / info.spatial_factor;
    if (info.video && info.max_frames == 1) {
      if (job.frames() > 1) {
        return Invalid("frames",
                       absl::StrCat(info.variant, " makes images: frames must be 0 or 1"));
      }
    } else if (info.video) {
      const int64_t t = info.temporal_factor;
      if (job.frames() < 1 || job.frames() > limits.max_frames || (job.frames() - 1) % t != 0) {
        return Invalid("frames", absl::StrCat(job.frames(), " must be ", t, "k+1 in [1, ",
                                              limits.max_frames, "]"));
      }
      frames = (job.frames() - 1) / t + 1;
    }
  }
  if (!info.video && job.frames() > 1) {
    return Invalid("frames", absl::StrCat(info.variant, " makes images: frames must be 0 or 1"));
  }
  *tokens = info.Tokens(frames, height, width) - info.joint_text_tokens;
  if (*tokens > limits.max_tokens) {
    return Invalid(job.latent().empty() ? "width" : "latent",
                   absl::StrCat(*tokens, " tokens exceed the limit of ", limits.max_tokens));
  }
  RL_RETURN_IF_ERROR(
      CheckFamilyStepCache(job, info, width * info.spatial_factor, height * info.spatial_factor));
  if (!info.check_conditioning) {
    return Invalid("positive", absl::StrCat(info.family, " models take no conditioning files"));
  }
  auto check = [&](const std::string& field) -> absl::Status {
    const std::string& bytes = field == "positive" ? job.positive() : job.negative();
    if (bytes.empty()) {
      return Invalid(field, field == "positive"
                                ? absl::StrCat("required (", info.family, " conditioning)")
                                : "required when cfg != 1 (the unconditional prediction uses it)");
    }
    auto header = models::ParseSafetensors(bytes, field);
    if (!header.ok()) return InField(field, header.status());
    return InField(field, info.check_conditioning(*header, absl::StrCat("conditioning ", field)));
  };
  RL_RETURN_IF_ERROR(check("positive"));
  if (job.cfg() != 1.0) RL_RETURN_IF_ERROR(check("negative"));
  return absl::OkStatus();
}

// Whether the job has text for the workers' encoder.
bool NeedsTextEncoder(const v1::SampleJob& job) {
  return !job.prompt().empty() ||
         (job.cfg() != 1.0 && job.negative().empty() && job.has_negative_prompt());
}

// What both kinds offer: the models in the roots, the samplers, schedulers, dtypes, placements.
std::string DescribeSampling(const std::vector<std::string>& roots) {
  v1::SampleKindDescription description;
  for (const ModelEntry& entry : ListModels(roots)) {
    v1::ModelFile& model = *description.add_models();
    model.set_name(entry.name);
    model.set_lora(entry.lora);
    model.set_bytes(entry.bytes);
    model.set_files(entry.files);
    model.set_family(entry.family);
  }
  for (const std::string& name : samplers::kSamplerNames) description.add_samplers(name);
  for (const std::string& name : samplers::kSchedulerNames) description.add_schedulers(name);
  for (const char* dtype : {"auto", "bf16", "f16", "f32"}) description.add_dtypes(dtype);
  description.add_placements("auto");
  for (models::Placement placement :
       {models::Placement::kResident, models::Placement::kFsdp, models::Placement::kFsdpHost,
        models::Placement::kLayerSwap}) {
    description.add_placements(models::PlacementName(placement));
  }
  return description.SerializeAsString();
}

class SampleKind final : public head::JobKind {
 public:
  SampleKind(std::vector<std::string> roots, SampleLimits limits)
      : roots_(std::move(roots)), limits_(limits) {}

  absl::StatusOr<v1::JobPlan> Plan(const std::string& job_id, absl::string_view payload,
                                   const v1::ClusterState& cluster) const override {
    auto parsed = ParseSampleJob(payload);
    if (!parsed.ok()) return parsed.status();
    v1::SampleJob job = *std::move(parsed);
    for (const auto& [field, bytes] :
         {std::pair<std::string, const std::string*>{"positive", &job.positive()},
          {"negative", &job.negative()},
          {"latent", &job.latent()}}) {
      if (auto status = CheckPayloadMetadata(field, *bytes); !status.ok()) return status;
    }
    auto common = PlanCommon(job, roots_, cluster);
    if (!common.ok()) return common.status();
    int64_t tokens = 0;
    // Wan's plan (prompts, images, experts, side models) below; every other family's is the
    // conditioning-file plan, which knows it only through its ModelInfo.
    if (common->info.family != "wan") return PlanConditioned(job_id, std::move(job), *common);
    if (job.frames() == 0 && job.latent().empty()) job.set_frames(kDefaultVideoFrames);
    if (auto status = CheckSampling(job, common->config, limits_, &tokens); !status.ok()) {
      return status;
    }
    auto low_noise = PlanLowNoiseExpert(job, roots_, *common);
    if (!low_noise.ok()) return low_noise.status();
    if (auto status = CheckWanStepCache(job, common->config, !low_noise->empty()); !status.ok()) {
      return status;
    }
    auto loras = ResolveLoras("loras", job.loras(), roots_);
    if (!loras.ok()) return loras.status();
    auto low_noise_loras = ResolveLoras("low_noise_loras", job.low_noise_loras(), roots_);
    if (!low_noise_loras.ok()) return low_noise_loras.status();
    if (low_noise->empty() && !low_noise_loras->empty()) {
      return Invalid("low_noise_loras", "given without a low_noise_model");
    }
    std::string text_encoder;
    if (NeedsTextEncoder(job)) {
      auto resolved =
          ResolveTextEncoder("text_encoder", job.text_encoder(), roots_, common->config.text_dim);
      if (!resolved.ok()) return resolved.status();
      text_encoder = *std::move(resolved);
    } else if (!job.text_encoder().empty()) {
      return Invalid("text_encoder", "given without a prompt to encode");
    }
    if (auto status = CheckOutput(job); !status.ok()) return status;
    std::string vae, clip_vision;
    const bool images = !job.image().empty() || !job.end_image().empty();
    if (DecodesOutput(job) || images) {
      auto resolved = ResolveVae("vae", job.vae(), roots_, common->config.out_channels);
      if (!resolved.ok()) return resolved.status();
      vae = *std::move(resolved);
    } else if (!job.vae().empty()) {
      return Invalid("vae", "given without an output to decode or an image to encode");
    }
    // CLIP vision for I2V models' images; TI2V's start image is the VAE's alone.
    if (images && common->config.i2v()) {
      auto resolved =
          ResolveClipVision("clip_vision", job.clip_vision(), roots_, common->config.image_dim);
      if (!resolved.ok()) return resolved.status();
      clip_vision = *std::move(resolved);
    } else if (!job.clip_vision().empty()) {
      return Invalid("clip_vision", "given without an image for an I2V model to encode");
    }
    v1::SampleCall call;
    call.set_job_id(job_id);
    *call.mutable_job() = std::move(job);
    if (!text_encoder.empty()) call.add_text_encoder_files(text_encoder);
    if (!vae.empty()) call.add_vae_files(vae);
    if (!clip_vision.empty()) call.add_clip_vision_files(clip_vision);
    for (const std::string& file : common->files) call.add_model_files(file);
    for (const std::string& file : *low_noise) call.add_low_noise_model_files(file);
    for (const std::string& file : *loras) call.add_lora_files(file);
    for (const std::string& file : *low_noise_loras) call.add_low_noise_lora_files(file);
    v1::JobPlan plan;
    FillPlan(*common, call.job(), plan);
    if (!loras->empty()) {  // the groups holding this LoRA'd model
      plan.set_affinity(absl::StrCat(plan.affinity(), "+", absl::StrJoin(*loras, "+")));
    }
    if (!low_noise->empty()) {
      // Groups that hold both experts are the ones to reuse.
      plan.set_affinity(absl::StrCat(plan.affinity(), "|", absl::StrJoin(*low_noise, ",")));
    }
    plan.set_method("sample");
    plan.set_args(call.SerializeAsString());
    const v1::SampleJob& j = call.job();
    plan.set_summary(
        absl::StrCat(common->config.name, " ",
                     j.latent().empty() ? absl::StrCat(j.width(), "x", j.height(), "x", j.frames())
                                        : "from latent",
                     " (", tokens, " tokens), ", j.steps(), " steps ",
                     j.sampler().empty() ? "euler" : j.sampler(),
                     low_noise->empty() ? "" : " with a low-noise expert", ", cfg ", j.cfg(),
                     ", seed ", j.seed(), ", ", common->mesh.ToString(), " on ",
                     common->mesh.world(), common->gpu ? " GPU" : " CPU", " workers",
                     DecodesOutput(j) ? absl::StrCat(", decoded to ", j.output()) : ""));
    return plan;
  }

  absl::StatusOr<std::string> Describe() const override { return DescribeSampling(roots_); }

 private:
  absl::StatusOr<v1::JobPlan> PlanConditioned(const std::string& job_id, v1::SampleJob job,
                                              const CommonPlan& common) const {
    if (common.info.video && job.frames() == 0 && job.latent().empty()) {
      job.set_frames(common.info.max_frames == 1 ? 1 : kDefaultVideoFrames);
    }
    int64_t tokens = 0;
    RL_RETURN_IF_ERROR(CheckConditionedJob(job, common.info, limits_, &tokens));
    auto loras = ResolveLoras("loras", job.loras(), roots_);
    if (!loras.ok()) return loras.status();
    // The family's VAE (Qwen-Image's: a Wan 2.1 VAE; Flux.1's and Chroma's: the image VAE) for an
    // output.
    std::string vae;
    if (DecodesOutput(job)) {
      RL_ASSIGN_OR_RETURN(
          vae, ResolveVae("vae", job.vae(), roots_, common.info.latent_channels, common.info.vae));
    } else if (!job.vae().empty()) {
      return Invalid("vae", "given without an output to decode");
    }
    v1::SampleCall call;
    call.set_job_id(job_id);
    *call.mutable_job() = std::move(job);
    for (const std::string& file : common.files) call.add_model_files(file);
    for (const std::string& file : *loras) call.add_lora_files(file);
    if (!vae.empty()) call.add_vae_files(vae);
    v1::JobPlan plan;
    FillPlan(common, call.job(), plan);
    if (!loras->empty()) {
      plan.set_affinity(absl::StrCat(plan.affinity(), "+", absl::StrJoin(*loras, "+")));
    }
    plan.set_method("sample");
    plan.set_args(call.SerializeAsString());
    const v1::SampleJob& j = call.job();
    plan.set_summary(absl::StrCat(
        common.info.variant, " ",
        j.latent().empty() ? absl::StrCat(j.width(), "x", j.height(),
                                          common.info.video ? absl::StrCat("x", j.frames()) : "")
                           : "from latent",
        " (", tokens, " latent tokens), ", j.steps(), " steps ",
        j.sampler().empty() ? "euler" : j.sampler(), ", cfg ", j.cfg(), ", seed ", j.seed(), ", ",
        common.mesh.ToString(), " on ", common.mesh.world(), common.gpu ? " GPU" : " CPU",
        " workers", DecodesOutput(j) ? absl::StrCat(", decoded to ", j.output()) : ""));
    return plan;
  }

  const std::vector<std::string> roots_;
  const SampleLimits limits_;
};

class LoadKind final : public head::JobKind {
 public:
  explicit LoadKind(std::vector<std::string> roots) : roots_(std::move(roots)) {}

  absl::StatusOr<v1::JobPlan> Plan(const std::string& job_id, absl::string_view payload,
                                   const v1::ClusterState& cluster) const override {
    auto parsed = ParseSampleJob(payload);
    if (!parsed.ok()) return parsed.status();
    v1::SampleJob job = *std::move(parsed);
    job.set_cfg(1.0);  // nothing to split: the mesh check must not ask for a negative
    auto common = PlanCommon(job, roots_, cluster);
    if (!common.ok()) return common.status();
    if (job.loras_size() > 0 && !common->info.merges_loras) {
      return Invalid("loras", absl::StrCat(common->info.variant, " (", common->info.family,
                                           ") takes no LoRAs yet"));
    }
    auto loras = ResolveLoras("loras", job.loras(), roots_);
    if (!loras.ok()) return loras.status();
    v1::LoadModelCall call;
    for (const std::string& file : common->files) call.add_model_files(file);
    for (const std::string& file : *loras) call.add_lora_files(file);
    v1::JobPlan plan;
    FillPlan(*common, job, plan);
    *call.mutable_job() = std::move(job);
    plan.set_method("load_model");
    plan.set_args(call.SerializeAsString());
    plan.set_summary(absl::StrCat("load ", common->info.variant, " on ", common->mesh.world(),
                                  common->gpu ? " GPU" : " CPU", " workers"));
    return plan;
  }

  absl::StatusOr<std::string> Describe() const override { return DescribeSampling(roots_); }

 private:
  const std::vector<std::string> roots_;
};

}  // namespace

void RegisterDiffusionJobKinds(head::JobKinds& kinds, std::vector<std::string> model_roots,
                               SampleLimits limits) {
  kinds[kSampleJobKind] = std::make_unique<SampleKind>(model_roots, limits);
  kinds[kLoadJobKind] = std::make_unique<LoadKind>(std::move(model_roots));
}

}  // namespace raylight::actors
