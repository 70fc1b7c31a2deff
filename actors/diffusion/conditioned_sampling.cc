// The run of every family but Wan (sampling_run.h): conditioning files in, a LATENT out, over
// any mesh; the family is reached only through DiffusionModel (its latent format, its model
// sampling, its forward under the files), so a new family runs here with no change. The journal
// and the per-call agreement as every run has them.
#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "actors/diffusion/agreed_model_calls.h"
#include "actors/diffusion/sampling_run.h"
#include "actors/diffusion/step_caches.h"
#include "models/core/latent_file.h"
#include "models/core/latent_format.h"
#include "models/vae/video_file.h"
#include "runtime/common/log.h"
#include "runtime/common/status_macros.h"
#include "samplers/mesh_sample.h"

namespace raylight::actors {

namespace {

// ComfyUI's model sampling for the family's kind; the job's shift, else the family's default.
samplers::ModelSampling SamplingOf(const models::ModelInfo& info, double job_shift) {
  const double shift = job_shift > 0 ? job_shift : info.default_shift;
  switch (info.sampling) {
    case models::SamplingKind::kFluxShift:
      return samplers::ModelSampling::Flux(shift);
    case models::SamplingKind::kShiftedFlow:
      break;
  }
  return samplers::ModelSampling::DiscreteFlow(shift);
}

}  // namespace

// The head refuses what these jobs cannot have (prompts: no family but Wan has its encoders here;
// images; decoding where no VAE here takes the family's latents; step caches but MagCache; LoRAs
// where the family merges none); the checks here say the same to a caller that skipped the head.
absl::StatusOr<SampleOutcome> SampleConditioned(const SampleRequest& request,
                                                const worker::GroupContext& group,
                                                const UpdateFn& update,
                                                const CancelledFn& cancelled,
                                                SamplingServices& services) {
  const auto start = Clock::now();
  const bool reports = group.rank == 0;
  const auto note = JobNotes(request, reports, update);
  const at::Device device = services.device();
  for (const auto& [field, given] :
       {std::pair{"prompt", !request.prompt.empty()},
        std::pair{"image", !request.image.empty() || !request.end_image.empty()},
        std::pair{"low_noise_model", !request.low_noise_model.files.empty()}}) {
    if (given) {
      return absl::InvalidArgumentError(
          absl::StrCat(field,
                       ": not available for this model family yet (it takes `positive` "
                       "conditioning files and returns a latent)"));
    }
  }
  const bool decodes = !request.output.empty() && request.output != "latent";
  if (decodes) RL_RETURN_IF_ERROR(models::vae::CheckVideoFileKind(request.output));
  SampleOutcome outcome;
  {
    RL_ASSIGN_OR_RETURN(comm::Communicator * world, services.World(group));
    RL_RETURN_IF_ERROR(AgreeToGoOn(*world, reports, cancelled, device, request.job_id));
  }
  // The starting LATENT ([B, C, H, W] as ComfyUI stores an image latent, [B, C, F, H, W] a
  // video one), or an empty one.
  at::Tensor latent;
  if (!request.latent.empty()) {
    RL_ASSIGN_OR_RETURN(models::Latent parsed, models::ParseLatent(request.latent, "latent"));
    if (parsed.noise_mask.defined()) {
      return absl::InvalidArgumentError(
          "latent: a 'noise_mask' is not supported for this model family yet");
    }
    latent = parsed.samples;
  }
  JobShape shape = ShapeOf(request.mesh, request.cfg);
  shape.tokens = [&](const models::ModelInfo& info) -> int64_t {
    if (latent.defined() && latent.dim() >= 3) {
      // [(B,) C, (F,) H, W]: frames where the family's latent has them.
      const int64_t frames =
          info.video && info.max_frames != 1 && latent.dim() >= 4 ? latent.size(-3) : 1;
      return info.Tokens(frames, latent.size(-2), latent.size(-1));
    }
    return info.PixelTokens(request.frames, request.height, request.width);
  };
  RL_ASSIGN_OR_RETURN(const EnsuredModel model, services.Ensure(request.model, group, shape));
  outcome.model_was_resident = model.was_resident;
  outcome.load_seconds = model.seconds;
  const models::ModelInfo& info = model.model->info();
  if (decodes && (info.vae.empty() || request.vae_files.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output: ", info.vae.empty() ? "no VAE decodes " + info.family + " latents here yet"
                                     : "no VAE file given to decode with"));
  }
  outcome.placement = absl::StrCat(model.summary->placement, " (", model.reason, ")");
  note(ModelNote(model, info.variant, outcome.placement));
  // The LATENT with its batch: [1, C, H, W] (image families) or [1, C, F, H, W] (video).
  const int64_t latent_dims = info.video ? 5 : 4;
  if (latent.defined()) {
    if (info.video && latent.dim() == 4 && latent.size(0) == 1 &&
        latent.size(1) == info.latent_channels) {
      latent = latent.unsqueeze(2);  // an image LATENT as one frame (ComfyUI's Wan21 format)
    } else if (latent.dim() == latent_dims - 1) {
      latent = latent.unsqueeze(0);
    }
    if (latent.dim() != latent_dims || latent.size(0) != 1 ||
        latent.size(1) != info.latent_channels) {
      return absl::InvalidArgumentError(
          absl::StrCat("latent: shape ", c10::str(latent.sizes()), "; ", info.variant,
                       " takes [1, ", info.latent_channels, info.video ? ", F, H, W]" : ", H, W]"));
    }
  } else {
    std::vector<int64_t> sides = {1, info.latent_channels};
    if (info.video) sides.push_back((std::max(request.frames, 1) - 1) / info.temporal_factor + 1);
    sides.push_back(request.height / info.spatial_factor);
    sides.push_back(request.width / info.spatial_factor);
    latent = at::zeros(sides);
  }
  RL_ASSIGN_OR_RETURN(parallel::MeshPlan plan,
                      PlanFor(request.mesh, group, model.model->info(), request.cfg));
  for (const std::string& line : plan.notes) note(line);
  RL_ASSIGN_OR_RETURN(parallel::Mesh * mesh, services.Mesh(request.mesh, group));
  RL_ASSIGN_OR_RETURN(comm::Communicator * group_world, services.World(group));
  comm::Communicator& world = *group_world;

  RL_ASSIGN_OR_RETURN(
      std::unique_ptr<models::ConditionedForward> conditioned,
      model.model->Condition(request.positive, request.cfg != 1.0 ? request.negative : "", device));
  models::ParallelContext sequence = mesh->sequence_context();
  sequence.fp8_attention = request.fp8_attention;
  std::unique_ptr<ModelCallJournal> journal = services.OpenJournal(request, group.rank);
  if (journal != nullptr && journal->recorded() > 0) {
    note(absl::StrCat("resuming: an earlier run of this job left ", journal->recorded(),
                      " model calls to replay"));
  }
  AgreedModelCalls agreed(world, reports, cancelled, journal.get(), device, request.job_id);
  // Step caching (MagCache: one schedule for the run; TeaCache: each state measures its calls):
  // one state per conditioning branch.
  RL_ASSIGN_OR_RETURN(StepCaches step_caches,
                      StepCaches::ForFamily(request, info, latent.size(-1) * info.spatial_factor,
                                            latent.size(-2) * info.spatial_factor));
  RL_RETURN_IF_ERROR(
      step_caches.CheckPlacement(model.summary->placement, request.mesh.dp, plan.split_cfg));
  if (step_caches.enabled()) note(step_caches.Describe());
  auto rows_of = [](samplers::Branch branch) {
    return branch == samplers::Branch::kBoth   ? models::ConditioningRows::kBoth
           : branch == samplers::Branch::kCond ? models::ConditioningRows::kPositive
                                               : models::ConditioningRows::kNegative;
  };
  samplers::ModelFn model_fn = [&](const at::Tensor& x, double timestep,
                                   samplers::Branch branch) -> absl::StatusOr<at::Tensor> {
    const models::ConditioningRows rows = rows_of(branch);
    models::ResidualCache* cache = step_caches.For(conditioned.get(), static_cast<int>(branch));
    return agreed.Call(x, timestep, static_cast<int>(branch),
                       [&] { return conditioned->Forward(x, timestep, rows, sequence, cache); });
  };
  samplers::KSamplerOptions options = SamplerOptionsOf(request);
  if (!conditioned->BatchesExactly()) {
    options.batch_cfg = false;
  } else if (step_caches.measures_rows()) {
    options.batch_cfg = true;  // one TeaCache decision over cond and uncond, as ComfyUI batches
  }
  options.latent_format = &model.model->latent_format();
  step_caches.ApplyTo(options);
  const samplers::ModelSampling sampling = SamplingOf(info, request.shift);
  {
    // The model warmed at the shape of its calls (sampling_run.h, WarmUpAtShape).
    const models::ConditioningRows rows =
        rows_of(samplers::FirstCallBranch(request.cfg, *mesh, plan, options.batch_cfg));
    const at::Tensor x = latent.to(device, at::kFloat);
    RL_RETURN_IF_ERROR(WarmUpAtShape(
        world, device, *model.model,
        WarmUpKey(absl::StrCat(c10::str(x.sizes()), " rows ", static_cast<int>(rows)), request),
        [&] { return conditioned->WarmUp(x, rows, sequence); }, note));
  }
  const auto sample_start = Clock::now();
  const int no_steps_before = 0, no_total = 0;
  const samplers::StepCallback callback =
      ProgressCallback(reports, update, outcome, no_steps_before, no_total);
  auto out = samplers::KSampleOnMesh(model_fn, sampling, latent.to(device), options, *mesh, plan,
                                     request.seeds, callback);
  outcome.sample_seconds = SecondsSince(sample_start);
  RL_RETURN_IF_ERROR(KeepResult(out, journal.get(), reports, at::Tensor(), outcome));
  // The family's LATENT is a video VAE's ([.., C, F, H, W]; Qwen-Image's one frame: a PNG).
  if (decodes) {
    RL_RETURN_IF_ERROR(DecodeResult(request, *out, world, services, note, outcome, info.vae));
  }
  if (journal != nullptr) journal->Remove();
  outcome.model_calls = static_cast<int>(agreed.calls()) + step_caches.calls_not_made();
  outcome.calls_reused = step_caches.reused();
  if (step_caches.enabled()) {
    note(absl::StrCat("the step cache answered ", outcome.calls_reused, " of ", outcome.model_calls,
                      " model calls"));
  }
  RL_LOG(INFO) << "job " << request.job_id << ": sampled " << request.steps << " steps in "
               << outcome.sample_seconds << " s (" << SecondsSince(start) << " s in all)";
  return outcome;
}

}  // namespace raylight::actors
