#include "actors/diffusion/diffusion_actor.h"

#include "absl/strings/str_cat.h"
#include "actors/diffusion/mesh_spec.h"
#include "actors/diffusion/model_roots.h"
#include "models/wan/wan_config.h"
#include "runtime/common/status_macros.h"

namespace raylight::actors {
namespace {

ModelRequest ToModelRequest(const v1::SampleJob& job,
                            const google::protobuf::RepeatedPtrField<std::string>& files,
                            const google::protobuf::RepeatedPtrField<v1::LoraRef>& loras,
                            const google::protobuf::RepeatedPtrField<std::string>& lora_files) {
  ModelRequest model;
  model.files.assign(files.begin(), files.end());
  for (int i = 0; i < lora_files.size() && i < loras.size(); ++i) {
    model.loras.push_back({lora_files[i], loras[i].strength()});
  }
  model.dtype = job.dtype().empty() ? "auto" : job.dtype();
  model.placement = job.placement().empty() ? "auto" : job.placement();
  model.swap_budget = job.swap_budget();
  model.fp8_compute = job.compute() == "fp8";
  return model;
}

// The resolved LoRA files of a call: one per LoRA the job names, each inside the model roots.
absl::Status CheckLoraFiles(const std::string& field, int named,
                            const google::protobuf::RepeatedPtrField<std::string>& files,
                            const std::vector<std::string>& roots) {
  if (files.size() != named) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", files.size(), " files for ", named, " LoRAs"));
  }
  if (files.empty()) return absl::OkStatus();
  return CheckModelFiles(field, {files.begin(), files.end()}, roots);
}

v1::ModelInfo ToProto(const ModelSummary& summary) {
  v1::ModelInfo info;
  info.set_path(summary.path);
  info.set_variant(summary.variant);
  info.set_dtype(summary.dtype);
  info.set_placement(summary.placement);
  info.set_device_bytes(summary.device_bytes);
  info.set_host_bytes(summary.host_bytes);
  info.set_last_used_unix_ms(summary.last_used_unix_ms);
  return info;
}

absl::StatusOr<const worker::GroupContext*> GroupOf(worker::CallContext& context,
                                                    const char* method) {
  if (context.group() == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(method, ": a group call (every rank of a collective group at once)"));
  }
  return context.group();
}

}  // namespace

DiffusionActor::DiffusionActor(const worker::ActorEnvironment& environment)
    : engine_(environment), model_roots_(environment.file_roots) {
  Register("sample", &DiffusionActor::Sample);
  Register("load_model", &DiffusionActor::LoadModel);
  Register("unload_model", &DiffusionActor::UnloadModel);
  Register("list_models", &DiffusionActor::ListModels);
}

void DiffusionActor::OnGroupLeft(const worker::GroupContext& group) {
  engine_.GroupLeft(group.group_id);
}

void DiffusionActor::AbortGroupCall(const worker::GroupContext& group, const absl::Status& why) {
  engine_.AbortGroup(group, why);
}

absl::StatusOr<v1::SampleResult> DiffusionActor::Sample(const v1::SampleCall& call,
                                                        worker::CallContext& context) {
  auto group = GroupOf(context, "sample");
  if (!group.ok()) return group.status();
  RL_RETURN_IF_ERROR(CheckModelFiles(
      "model_files", {call.model_files().begin(), call.model_files().end()}, model_roots_));
  if (call.low_noise_model_files_size() > 0) {
    RL_RETURN_IF_ERROR(CheckModelFiles(
        "low_noise_model_files",
        {call.low_noise_model_files().begin(), call.low_noise_model_files().end()}, model_roots_));
  }
  // LoRA files too come from the model roots only, one per LoRA the job names.
  const v1::SampleJob& job = call.job();
  RL_RETURN_IF_ERROR(
      CheckLoraFiles("lora_files", job.loras_size(), call.lora_files(), model_roots_));
  RL_RETURN_IF_ERROR(CheckLoraFiles("low_noise_lora_files", job.low_noise_loras_size(),
                                    call.low_noise_lora_files(), model_roots_));
  if (call.text_encoder_files_size() > 0) {
    RL_RETURN_IF_ERROR(CheckModelFiles(
        "text_encoder_files", {call.text_encoder_files().begin(), call.text_encoder_files().end()},
        model_roots_));
  }
  if (call.vae_files_size() > 0) {
    RL_RETURN_IF_ERROR(CheckModelFiles(
        "vae_files", {call.vae_files().begin(), call.vae_files().end()}, model_roots_));
  }
  if (call.clip_vision_files_size() > 0) {
    RL_RETURN_IF_ERROR(CheckModelFiles(
        "clip_vision_files", {call.clip_vision_files().begin(), call.clip_vision_files().end()},
        model_roots_));
  }
  SampleRequest request;
  request.job_id = call.job_id();
  {
    // FNV-1a over the call's bytes: the same on every run of the job (the head sends the plan's
    // bytes each time), stable across processes, unlike std::hash.
    uint64_t hash = 14695981039346656037ull;
    for (unsigned char c : call.SerializeAsString()) hash = (hash ^ c) * 1099511628211ull;
    request.fingerprint = hash == 0 ? 1 : hash;
  }
  request.image = job.image();
  request.fp8_attention = job.attention() == "fp8";
  request.cache_kind = job.cache().kind();
  request.cache_threshold = job.cache().threshold();
  request.cache_coefficients.assign(job.cache().coefficients().begin(),
                                    job.cache().coefficients().end());
  request.cache_retention_steps =
      !job.cache().has_retention_steps() || job.cache().retention_steps();
  request.cache_max_skips = job.cache().max_skips();
  request.cache_retention_ratio =
      job.cache().has_retention_ratio() ? job.cache().retention_ratio() : -1;
  request.cache_mag_ratios.assign(job.cache().mag_ratios().begin(), job.cache().mag_ratios().end());
  if (job.cache().has_start_percent()) request.cache_start_percent = job.cache().start_percent();
  if (job.cache().has_end_percent()) request.cache_end_percent = job.cache().end_percent();
  request.end_image = job.end_image();
  request.clip_vision_files.assign(call.clip_vision_files().begin(),
                                   call.clip_vision_files().end());
  request.output = job.output().empty() ? "latent" : job.output();
  request.vae_files.assign(call.vae_files().begin(), call.vae_files().end());
  request.fps = job.fps();  // 0: the engine's default for the model
  request.crf = job.has_crf() ? job.crf() : 19;
  request.prompt = job.prompt();
  request.negative_prompt =
      job.has_negative_prompt() ? job.negative_prompt() : models::wan::kWanDefaultNegativePrompt;
  request.text_encoder_files.assign(call.text_encoder_files().begin(),
                                    call.text_encoder_files().end());
  request.model = ToModelRequest(job, call.model_files(), job.loras(), call.lora_files());
  request.mesh = MeshShapeOf(job.mesh());
  request.positive = job.positive();
  request.negative = job.negative();
  request.latent = job.latent();
  request.width = job.width();
  request.height = job.height();
  request.frames = job.frames();
  request.steps = job.steps();
  request.cfg = job.cfg();
  request.sampler = job.sampler().empty() ? "euler" : job.sampler();
  request.scheduler = job.scheduler().empty() ? "simple" : job.scheduler();
  request.shift = job.shift();
  request.seed = job.seed();
  request.seeds.assign(job.seeds().begin(), job.seeds().end());
  request.denoise = job.denoise();
  request.add_noise = !job.has_add_noise() || job.add_noise();
  request.start_step = job.start_step();
  request.end_step = job.has_end_step() ? job.end_step() : request.end_step;
  request.return_with_leftover_noise = job.return_with_leftover_noise();
  request.sigmas.assign(job.sigmas().begin(), job.sigmas().end());
  request.preview_every = job.preview_every();
  if (call.low_noise_model_files_size() > 0) {
    request.low_noise_model = ToModelRequest(job, call.low_noise_model_files(),
                                             job.low_noise_loras(), call.low_noise_lora_files());
  }
  request.boundary = job.boundary();
  auto outcome = engine_.Sample(
      request, **group,
      [&context](const SampleUpdate& update) {
        v1::SampleProgress progress;
        progress.set_step(update.step);
        progress.set_total(update.total);
        progress.set_sigma(update.sigma);
        progress.set_elapsed_seconds(update.elapsed_seconds);
        progress.set_preview_png(update.preview_png);
        progress.set_message(update.message);
        context.Emit(progress.SerializeAsString());
      },
      [&context] { return context.cancelled(); });
  if (!outcome.ok()) return outcome.status();
  v1::SampleResult result;
  result.set_latent(std::move(outcome->latent));
  result.set_preview_png(std::move(outcome->preview_png));
  result.set_model_was_resident(outcome->model_was_resident);
  result.set_load_seconds(outcome->load_seconds);
  result.set_sample_seconds(outcome->sample_seconds);
  result.set_placement(outcome->placement);
  result.set_video(std::move(outcome->video));
  result.set_video_format(outcome->video_format);
  result.set_decode_seconds(outcome->decode_seconds);
  result.set_model_calls(outcome->model_calls);
  result.set_calls_reused(outcome->calls_reused);
  return result;
}

absl::StatusOr<v1::LoadModelResult> DiffusionActor::LoadModel(const v1::LoadModelCall& call,
                                                              worker::CallContext& context) {
  auto group = GroupOf(context, "load_model");
  if (!group.ok()) return group.status();
  RL_RETURN_IF_ERROR(CheckModelFiles(
      "model_files", {call.model_files().begin(), call.model_files().end()}, model_roots_));
  RL_RETURN_IF_ERROR(
      CheckLoraFiles("lora_files", call.job().loras_size(), call.lora_files(), model_roots_));
  auto outcome = engine_.Load(
      ToModelRequest(call.job(), call.model_files(), call.job().loras(), call.lora_files()),
      MeshShapeOf(call.job().mesh()), **group);
  if (!outcome.ok()) return outcome.status();
  v1::LoadModelResult result;
  *result.mutable_model() = ToProto(outcome->model);
  result.set_already_loaded(outcome->already_loaded);
  result.set_load_seconds(outcome->load_seconds);
  return result;
}

absl::StatusOr<v1::UnloadModelResponse> DiffusionActor::UnloadModel(
    const v1::UnloadModelRequest& request, worker::CallContext&) {
  v1::UnloadModelResponse response;
  for (const ModelSummary& summary : engine_.Unload(request.path())) {
    *response.add_unloaded() = ToProto(summary);
  }
  return response;
}

absl::StatusOr<v1::ListModelsResponse> DiffusionActor::ListModels(const v1::ListModelsRequest&,
                                                                  worker::CallContext&) {
  v1::ListModelsResponse response;
  for (const ModelSummary& summary : engine_.List()) *response.add_models() = ToProto(summary);
  return response;
}

void RegisterDiffusionActor(worker::ActorRegistry& registry) {
  registry.Register(kDiffusionActorClass,
                    [](const worker::ActorEnvironment& environment,
                       absl::string_view) -> absl::StatusOr<std::unique_ptr<worker::Actor>> {
                      return std::make_unique<DiffusionActor>(environment);
                    });
}

}  // namespace raylight::actors
