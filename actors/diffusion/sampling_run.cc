#include "actors/diffusion/sampling_run.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "actors/diffusion/video_output.h"
#include "models/core/latent_file.h"
#include "runtime/common/log.h"
#include "runtime/common/status_macros.h"

namespace raylight::actors {

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string ModelNote(const EnsuredModel& model, const std::string& variant,
                      const std::string& placement) {
  if (model.was_resident) {
    return absl::StrCat("model ", model.summary->path, " is resident (", variant, ", ", placement,
                        ")");
  }
  const double gb = (model.summary->device_bytes + model.summary->host_bytes) / 1e9;
  return absl::StrFormat("loaded %s (%s, %s) in %.3g s: %.3g GB placed, %.3g GB/s",
                         model.summary->path, variant, placement, model.seconds, gb,
                         model.seconds > 0 ? gb / model.seconds : 0.0);
}

absl::Status WarmUpAtShape(comm::Communicator& world, at::Device device,
                           models::DiffusionModel& model, const std::string& shape,
                           const std::function<absl::StatusOr<bool>()>& warm_up,
                           const std::function<void(std::string)>& note) {
  at::Tensor go = at::full({1}, model.WarmedAt(shape) ? 0 : 1, at::kLong);
  if (world.size() > 1) {
    at::Tensor shared = go.to(device);
    RL_RETURN_IF_ERROR(world.Broadcast(shared, 0));
    go = shared.cpu();
  }
  if (go.item<int64_t>() == 0) return absl::OkStatus();
  const auto start = Clock::now();
  const absl::StatusOr<bool> warmed = warm_up();
  if (!warmed.ok()) {
    return absl::Status(warmed.status().code(),
                        absl::StrCat("warm-up: ", warmed.status().message()));
  }
  if (!*warmed) return absl::OkStatus();
  model.NoteWarmedAt(shape);
  note(absl::StrFormat("warmed %s at the job's shape (one block) in %.3g s", model.info().variant,
                       SecondsSince(start)));
  return absl::OkStatus();
}

std::string WarmUpKey(const std::string& shapes, const SampleRequest& request) {
  return absl::StrCat(shapes, request.fp8_attention ? " fp8 attention" : "");
}

absl::StatusOr<at::ScalarType> ComputeDtype(const std::string& dtype, bool gpu) {
  if (dtype.empty() || dtype == "auto") return gpu ? at::kBFloat16 : at::kFloat;
  if (dtype == "bf16") return at::kBFloat16;
  if (dtype == "f16") return at::kHalf;
  if (dtype == "f32") return at::kFloat;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype: unknown '", dtype, "' (auto, bf16, f16, f32)"));
}

JobShape ShapeOf(const parallel::MeshShape& mesh, double cfg) {
  JobShape shape;
  shape.sequence_degree = std::max(1, mesh.ulysses * mesh.ring);
  shape.batch = cfg != 1.0 && mesh.cfg < 2 ? 2 : 1;
  return shape;
}

absl::StatusOr<parallel::MeshPlan> PlanFor(const parallel::MeshShape& mesh,
                                           const worker::GroupContext& group,
                                           const models::ModelInfo& info, double cfg) {
  return parallel::PlanMesh(mesh, group.size, info.num_heads, cfg);
}

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

absl::Status KeepResult(const absl::StatusOr<at::Tensor>& out, ModelCallJournal* journal,
                        bool reports, const at::Tensor& noise_mask, SampleOutcome& outcome) {
  if (!out.ok()) {
    if (journal != nullptr && out.status().code() == absl::StatusCode::kCancelled) {
      journal->Remove();
    }
    return out.status();
  }
  if (reports) {
    RL_ASSIGN_OR_RETURN(outcome.latent,
                        models::SerializeLatent(out->to(at::kCPU).flatten(0, 1), noise_mask));
  }
  return absl::OkStatus();
}

absl::Status DecodeResult(const SampleRequest& request, const at::Tensor& out,
                          comm::Communicator& world, SamplingServices& services,
                          const std::function<void(std::string)>& note, SampleOutcome& outcome,
                          const std::string& vae_kind) {
  RL_ASSIGN_OR_RETURN(const at::ScalarType dtype,
                      ComputeDtype(request.model.dtype, services.device().is_cuda()));
  const bool image = vae_kind == "kl";
  note(image ? absl::StrCat("decoding ", out.size(0), " image latent(s) on rank 0")
             : absl::StrCat("decoding ", out.size(0), " latent(s) of ", out.size(3),
                            " frames over ", world.size(), " rank(s)"));
  VideoOutputRequest video{.output = request.output,
                           .vae_kind = vae_kind,
                           .vae_files = request.vae_files,
                           .fps = request.fps,
                           .crf = request.crf,
                           .dtype = dtype,
                           .free_bytes = services.DeviceFreeBytes()};
  RL_ASSIGN_OR_RETURN(DecodedOutput decoded,
                      services.side_models().video.Decode(video, out.flatten(0, 1), world));
  outcome.video = std::move(decoded.file);
  outcome.video_format = decoded.format;
  outcome.decode_seconds = decoded.seconds;
  note(absl::StrCat("decoded ", decoded.frames, " frames to ", decoded.format, " in ",
                    absl::StrFormat("%.2f", decoded.seconds), " s",
                    decoded.tile > 0
                        ? absl::StrCat(" (in ", decoded.tile, "-pixel tiles: device memory short)")
                        : ""));
  return absl::OkStatus();
}

std::function<void(std::string)> JobNotes(const SampleRequest& request, bool reports,
                                          const UpdateFn& update) {
  return [job_id = request.job_id, reports, update](std::string message) {
    RL_LOG(INFO) << "job " << job_id << ": " << message;
    if (reports && update) update(SampleUpdate{.message = std::move(message)});
  };
}

}  // namespace raylight::actors
