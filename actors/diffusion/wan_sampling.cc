// Wan's sampling run (sampling_run.h): prompts and images encoded on rank 0 and shared, the
// Wan 2.2 A14B experts as one run, TI2V's per-frame timesteps, TeaCache, the journal, and the
// decode to video over the group.
#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "actors/diffusion/agreed_model_calls.h"
#include "actors/diffusion/job_inputs.h"
#include "actors/diffusion/sampling_run.h"
#include "actors/diffusion/step_caches.h"
#include "actors/diffusion/video_output.h"
#include "models/core/latent_file.h"
#include "models/core/latent_format.h"
#include "models/vae/video_file.h"
#include "models/wan/wan_conditioning.h"
#include "models/wan/wan_family.h"
#include "models/wan/wan_model.h"
#include "runtime/common/log.h"
#include "runtime/common/status_macros.h"
#include "samplers/denoise_mask.h"
#include "samplers/mesh_sample.h"

namespace raylight::actors {
namespace {

// Wan 2.2 A14B's expert boundaries on the shifted sigma (its official configs).
constexpr double kWan22T2vBoundary = 0.875;
constexpr double kWan22I2vBoundary = 0.900;

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

// Wan 2.2 A14B's expert boundary: the job's, else the one for its kind.
double ExpertBoundary(const SampleRequest& request, const models::wan::WanConfig& config) {
  return request.boundary > 0 ? request.boundary
         : config.i2v()       ? kWan22I2vBoundary
                              : kWan22T2vBoundary;
}

// The schedule's model sampling (ComfyUI's ModelSamplingSD3 for Wan, the job's shift or 5).
samplers::ModelSampling WanSampling(const SampleRequest& request) {
  return samplers::ModelSampling::DiscreteFlow(request.shift > 0 ? request.shift : 5.0);
}

// Wan 2.2 A14B in one job: the two runs of samplers::SplitForExperts, the second starting on
// every data-parallel rank from its own first result, exactly as two chained jobs would.
// Returns what KSampleOnMesh returns ([dp, ...], every rank).
absl::StatusOr<at::Tensor> SampleExperts(
    const samplers::ModelFn& high_noise, const samplers::ModelFn& low_noise,
    const samplers::ModelSampling& sampling, const at::Tensor& latent,
    const samplers::KSamplerOptions& options, const SampleRequest& request,
    const models::wan::WanConfig& config, const parallel::Mesh& mesh,
    const parallel::MeshPlan& plan, const samplers::StepCallback& callback, int* steps_before,
    int* steps_in_all) {
  auto runs = samplers::SplitForExperts(sampling, options, ExpertBoundary(request, config));
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

}  // namespace

absl::StatusOr<SampleOutcome> SampleWan(const SampleRequest& request,
                                        const worker::GroupContext& group, const UpdateFn& update,
                                        const CancelledFn& cancelled, SamplingServices& services) {
  const auto start = Clock::now();
  const bool reports = group.rank == 0;
  const auto note = JobNotes(request, reports, update);
  const at::Device device = services.device();
  SampleOutcome outcome;
  const bool decodes = request.output != "latent";
  // An output this worker cannot write (no FFmpeg) fails before anything is spent on it.
  if (decodes) RL_RETURN_IF_ERROR(models::vae::CheckVideoFileKind(request.output));
  {
    // A cancel that reached rank 0 before the run started stops every rank here, together.
    RL_ASSIGN_OR_RETURN(comm::Communicator * world, services.World(group));
    RL_RETURN_IF_ERROR(AgreeToGoOn(*world, reports, cancelled, device, request.job_id));
  }
  // Prompts and images are encoded before the model loads; the starting latent's size is the
  // job's for the placement.
  auto inputs = MakeJobInputs(
      request, group.rank, services.side_models(), device,
      ComputeDtype(request.model.dtype, device.is_cuda()),
      [&]() -> absl::StatusOr<comm::Communicator*> { return services.World(group); }, note);
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
  RL_ASSIGN_OR_RETURN(const EnsuredModel model, services.Ensure(request.model, group, shape));
  outcome.model_was_resident = model.was_resident;
  outcome.load_seconds = model.seconds;
  const std::string& reason = model.reason;
  const auto* wan_model = dynamic_cast<const models::wan::WanDiffusionModel*>(model.model);
  if (wan_model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: ", model.summary->path, " is not a Wan model"));
  }
  const models::wan::WanConfig& config = wan_model->config();
  outcome.placement = absl::StrCat(model.summary->placement, " (", reason, ")");
  note(ModelNote(model, config.name, outcome.placement));
  // Wan 2.2 A14B: the low-noise expert beside the high-noise one, both kept.
  std::optional<EnsuredModel> low_noise;
  if (!request.low_noise_model.files.empty()) {
    auto loaded = services.Ensure(request.low_noise_model, group, shape, {model.key});
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("low_noise_model: ", loaded.status().message()));
    }
    low_noise = *std::move(loaded);
    const bool resident = low_noise->was_resident;
    const double seconds = low_noise->seconds;
    if (!low_noise->model->SameArchitecture(*model.model)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "low_noise_model: ", low_noise->model->info().variant, " is not the architecture of the ",
          "high-noise expert (", config.name, ")"));
    }
    outcome.model_was_resident = outcome.model_was_resident && resident;
    outcome.load_seconds += seconds;
    note(resident ? absl::StrCat("low-noise expert ", low_noise->summary->path, " is resident")
                  : absl::StrCat("loaded the low-noise expert ", low_noise->summary->path, " (",
                                 low_noise->summary->placement, ") in ", seconds, " s"));
  }

  auto plan = PlanFor(request.mesh, group, model.model->info(), request.cfg);
  if (!plan.ok()) return plan.status();
  for (const std::string& line : plan->notes) note(line);
  auto mesh = services.Mesh(request.mesh, group);
  if (!mesh.ok()) return mesh.status();
  // Made with the mesh just above, unless aborted since.
  RL_ASSIGN_OR_RETURN(comm::Communicator * group_world, services.World(group));
  comm::Communicator& world = *group_world;

  auto positive = prompt_text.defined()
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
  const at::TensorOptions on_device = at::TensorOptions().device(device);
  const at::Tensor positive_text = positive->text.to(device);
  const at::Tensor negative_text =
      negative.text.defined() ? negative.text.to(device) : positive_text;
  const at::Tensor clip_fea =
      positive->clip_fea.defined() ? positive->clip_fea.to(device) : at::Tensor();
  const at::Tensor y = positive->y.defined() ? positive->y.to(device) : at::Tensor();
  // A noise mask: Wan 2.2's 48-channel model (ComfyUI's WAN22) sees a timestep per frame,
  // scaled by the frame's share of noise — [1, tokens] after repeating over a frame's tokens.
  at::Tensor frame_timestep_scale;
  int64_t tokens_per_frame = 0;
  if (noise_mask.defined()) {
    if (config.i2v()) {
      return absl::InvalidArgumentError(
          absl::StrCat("latent: a 'noise_mask' with ", config.name,
                       " (image-to-video takes its mask from the conditioning) is not supported"));
    }
    auto prepared = samplers::PrepareDenoiseMask(noise_mask, latent.sizes());
    if (!prepared.ok()) {
      return absl::Status(prepared.status().code(),
                          absl::StrCat("latent: ", prepared.status().message()));
    }
    if (config.per_token_timesteps()) {
      frame_timestep_scale = samplers::FrameTimestepScale(*prepared).to(device);
      tokens_per_frame = (latent.size(3) / config.patch_h) * (latent.size(4) / config.patch_w);
    }
  }
  models::ParallelContext sequence = (*mesh)->sequence_context();
  sequence.fp8_attention = request.fp8_attention;
  // Rank 0 journals the run's model outputs where every rank's are the same (no data or CFG
  // parallel axis), so that the job's next run after a lost rank replays them.
  std::unique_ptr<ModelCallJournal> journal = services.OpenJournal(request, group.rank);
  if (journal != nullptr && journal->recorded() > 0) {
    note(absl::StrCat("resuming: an earlier run of this job left ", journal->recorded(),
                      " model calls to replay"));
  }
  AgreedModelCalls agreed(world, reports, cancelled, journal.get(), device, request.job_id);
  // Step caching (TeaCache: one state per model and conditioning branch; MagCache: one schedule
  // for the run, both experts of a two-expert job following it from the switch step on).
  int switch_step = 0;
  if (low_noise.has_value() && request.cache_kind == "magcache") {
    auto runs = samplers::SplitForExperts(WanSampling(request), SamplerOptionsOf(request),
                                          ExpertBoundary(request, config));
    if (!runs.ok()) return runs.status();
    switch_step = runs->switch_step;
  }
  auto step_caches =
      StepCaches::ForJob(request, config, latent.size(4) * config.vae_spatial(),
                         latent.size(3) * config.vae_spatial(), low_noise.has_value(), switch_step);
  if (!step_caches.ok()) return step_caches.status();
  RL_RETURN_IF_ERROR(step_caches->CheckPlacement(model.summary->placement, request.mesh.dp));
  if (step_caches->enabled()) note(step_caches->Describe());
  // The inputs of a model call on `branch`.
  auto call_inputs = [&](const at::Tensor& x, double timestep, samplers::Branch branch) {
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
    return samplers::InputsFor(branch, inputs, models::wan::BatchInputs);
  };
  // The network of one loaded model (an expert of a two-expert job, or the job's model).
  auto model_fn_for = [&](models::WeightProvider& weights) -> samplers::ModelFn {
    return [&, weights = &weights](const at::Tensor& x, double timestep,
                                   samplers::Branch branch) -> absl::StatusOr<at::Tensor> {
      auto forward = [&]() -> absl::StatusOr<at::Tensor> {
        models::wan::WanInputs batch = call_inputs(x, timestep, branch);
        batch.step_cache = step_caches->For(weights, static_cast<int>(branch));
        return models::wan::WanForward(config, batch, sequence, *weights);
      };
      return agreed.Call(x, timestep, static_cast<int>(branch), forward);
    };
  };

  samplers::KSamplerOptions options = SamplerOptionsOf(request);
  step_caches->ApplyTo(options);
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
  const samplers::ModelSampling sampling = WanSampling(request);
  {
    // Each model of the run warmed at the shape of its calls (sampling_run.h, WarmUpAtShape).
    const samplers::Branch branch =
        samplers::FirstCallBranch(request.cfg, **mesh, *plan, options.batch_cfg);
    const at::Tensor x = latent.to(device, at::kFloat);
    const models::wan::WanInputs warm_inputs = call_inputs(x, 999.0, branch);
    const std::string shape = WarmUpKey(
        absl::StrCat(c10::str(warm_inputs.x.sizes()), " text ",
                     c10::str(warm_inputs.context.sizes()), " t ", c10::str(warm_inputs.t.sizes())),
        request);
    const EnsuredModel* no_expert = nullptr;
    for (const EnsuredModel* expert : {&model, low_noise.has_value() ? &*low_noise : no_expert}) {
      if (expert == nullptr) continue;
      RL_RETURN_IF_ERROR(WarmUpAtShape(
          world, device, *expert->model, shape,
          [&]() -> absl::StatusOr<bool> {
            RL_RETURN_IF_ERROR(models::wan::WarmUpWanForward(config, warm_inputs, sequence,
                                                             expert->model->weights()));
            return true;
          },
          note));
    }
  }
  const auto sample_start = Clock::now();
  // A two-expert job is two runs; progress counts the steps of both.
  int steps_before = 0, steps_in_all = 0;
  samplers::StepCallback callback =
      ProgressCallback(reports, update, outcome, steps_before, steps_in_all);
  absl::StatusOr<at::Tensor> out;
  if (!low_noise.has_value()) {
    out = samplers::KSampleOnMesh(model_fn_for(model.model->weights()), sampling, latent.to(device),
                                  options, **mesh, *plan, request.seeds, callback);
  } else {
    out = SampleExperts(model_fn_for(model.model->weights()),
                        model_fn_for(low_noise->model->weights()), sampling, latent.to(device),
                        options, request, config, **mesh, *plan, callback, &steps_before,
                        &steps_in_all);
  }
  outcome.sample_seconds = SecondsSince(sample_start);
  RL_RETURN_IF_ERROR(KeepResult(out, journal.get(), reports, noise_mask, outcome));
  if (decodes) RL_RETURN_IF_ERROR(DecodeResult(request, *out, world, services, note, outcome));
  if (journal != nullptr) journal->Remove();  // the job is done: nothing to resume
  outcome.model_calls = static_cast<int>(agreed.calls()) + step_caches->calls_not_made();
  outcome.calls_reused = step_caches->reused();
  if (step_caches->enabled()) {
    note(absl::StrCat("the step cache answered ", outcome.calls_reused, " of ", outcome.model_calls,
                      " model calls"));
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

}  // namespace raylight::actors
