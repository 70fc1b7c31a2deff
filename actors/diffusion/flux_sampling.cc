// Flux.1's sampling run (sampling_run.h): conditioning files in, an image LATENT out, over any
// sequence-parallel mesh; the journal and the per-call agreement as every run has them.
#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "actors/diffusion/agreed_model_calls.h"
#include "actors/diffusion/sampling_run.h"
#include "models/core/latent_file.h"
#include "models/core/latent_format.h"
#include "models/flux/flux_conditioning.h"
#include "models/flux/flux_model.h"
#include "runtime/common/log.h"
#include "runtime/common/status_macros.h"
#include "samplers/mesh_sample.h"

namespace raylight::actors {

// An image family's run (Flux.1): conditioning files in, a LATENT out. The head refuses what
// Flux jobs cannot have yet (prompts: its CLIP-L and T5 encoders; images; decoding: its VAE;
// step caches; LoRAs); the checks here say the same to a caller that skipped the head.
absl::StatusOr<SampleOutcome> SampleFlux(const SampleRequest& request,
                                         const worker::GroupContext& group, const UpdateFn& update,
                                         const CancelledFn& cancelled, SamplingServices& services) {
  const auto start = Clock::now();
  const bool reports = group.rank == 0;
  const auto note = JobNotes(request, reports, update);
  const at::Device device = services.device();
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
  {
    RL_ASSIGN_OR_RETURN(comm::Communicator * world, services.World(group));
    RL_RETURN_IF_ERROR(AgreeToGoOn(*world, reports, cancelled, device, request.job_id));
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
  RL_ASSIGN_OR_RETURN(const EnsuredModel model, services.Ensure(request.model, group, shape));
  outcome.model_was_resident = model.was_resident;
  outcome.load_seconds = model.seconds;
  const auto* flux_model = dynamic_cast<const models::FluxDiffusionModel*>(model.model);
  if (flux_model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: ", model.summary->path, " is not a Flux model"));
  }
  const models::flux::FluxConfig& config = flux_model->config();
  outcome.placement = absl::StrCat(model.summary->placement, " (", model.reason, ")");
  note(outcome.model_was_resident
           ? absl::StrCat("model ", model.summary->path, " is resident (", config.name, ", ",
                          outcome.placement, ")")
           : absl::StrCat("loaded ", model.summary->path, " (", config.name, ", ",
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
                      PlanFor(request.mesh, group, model.model->info(), request.cfg));
  for (const std::string& line : plan.notes) note(line);
  RL_ASSIGN_OR_RETURN(parallel::Mesh * mesh, services.Mesh(request.mesh, group));
  RL_ASSIGN_OR_RETURN(comm::Communicator * group_world, services.World(group));
  comm::Communicator& world = *group_world;

  RL_ASSIGN_OR_RETURN(models::flux::FluxConditioning positive,
                      models::flux::ParseFluxConditioning(request.positive, "positive", config));
  models::flux::FluxConditioning negative = positive;
  if (request.cfg != 1.0) {
    RL_ASSIGN_OR_RETURN(negative,
                        models::flux::ParseFluxConditioning(request.negative, "negative", config));
  }
  const models::ParallelContext sequence = mesh->sequence_context();
  std::unique_ptr<ModelCallJournal> journal = services.OpenJournal(request, group.rank);
  if (journal != nullptr && journal->recorded() > 0) {
    note(absl::StrCat("resuming: an earlier run of this job left ", journal->recorded(),
                      " model calls to replay"));
  }
  AgreedModelCalls agreed(world, reports, cancelled, journal.get(), device, request.job_id);
  models::WeightProvider& weights = model.model->weights();
  const at::TensorOptions floats = at::TensorOptions().device(device).dtype(at::kFloat);
  auto as_inputs = [&](const models::flux::FluxConditioning& c) {
    models::flux::FluxInputs in;
    in.context = c.text.to(device);
    in.pooled = c.pooled.to(device);
    // Kontext's references enter the model's space as ComfyUI's extra_conds takes them there.
    for (const at::Tensor& ref : c.reference_latents) {
      in.references.push_back(models::ProcessIn(models::Flux1LatentFormat(), ref).to(device));
    }
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
  if (!models::flux::BatchesExactly(cond, uncond)) {
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
  auto out = samplers::KSampleOnMesh(model_fn, sampling, latent.to(device), options, *mesh, plan,
                                     request.seeds, callback);
  outcome.sample_seconds = SecondsSince(sample_start);
  RL_RETURN_IF_ERROR(KeepResult(out, journal.get(), reports, at::Tensor(), outcome));
  if (journal != nullptr) journal->Remove();
  outcome.model_calls = static_cast<int>(agreed.calls());
  RL_LOG(INFO) << "job " << request.job_id << ": sampled " << request.steps << " steps in "
               << outcome.sample_seconds << " s (" << SecondsSince(start) << " s in all)";
  return outcome;
}

}  // namespace raylight::actors
