#include "client/cli/job_commands.h"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/progress_bar.h"
#include "client/cli/table.h"
#include "client/sdk/job_client.h"
#include "runtime/common/file_util.h"
#include "samplers/sampler_names.h"

namespace raylight::cli {
namespace {

namespace fs = std::filesystem;

int Fail(const absl::Status& status) {
  std::cerr << "raylightctl: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return 1;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& flag) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' is not a file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read '", path, "'"));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string Clock(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

std::string StateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  return name.rfind("JOB_", 0) == 0 ? name.substr(4) : name;
}

void AddModelFlags(CLI::App& command, SampleFlags& flags) {
  command.add_option("--model", flags.model, "model name under a model root, or a path inside one")
      ->required();
  command.add_option("--dtype", flags.dtype, "auto, bf16, f16, f32")->capture_default_str();
  command
      .add_option("--compute", flags.compute,
                  "default, or fp8: the linear layers as fp8 e4m3 GEMMs")
      ->capture_default_str();
  command
      .add_option("--attention", flags.attention,
                  "default, or fp8: the self-attention as cuDNN's fp8 kernel (Hopper or newer; "
                  "lossy)")
      ->capture_default_str();
  command.add_option("--lora", flags.loras,
                     "a LoRA under a model root, NAME[:STRENGTH] (default 1; repeatable, merged "
                     "in order)");
  command.add_option("--placement", flags.placement, "auto, resident, fsdp, fsdp-host, swap")
      ->capture_default_str();
  command
      .add_option("--swap-budget", flags.swap_budget,
                  "swap: device budget for blocks, a fraction of their bytes (0: from free memory)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  command.add_option("--ulysses", flags.ulysses, "Ulysses sequence-parallel degree")
      ->capture_default_str();
  command.add_option("--ring", flags.ring, "Ring attention degree")->capture_default_str();
  command
      .add_option("--cfg-parallel", flags.cfg_parallel, "1, or 2 (cond and uncond on two ranks)")
      ->capture_default_str();
  command.add_option("--dp", flags.dp, "data-parallel degree (seed + rank each)")
      ->capture_default_str();
  command.add_flag("--cpu", flags.cpu, "run on CPU workers even when GPUs exist");
}

// NAME[:STRENGTH]: the strength is what follows the last ':' when it is a number.
v1::LoraRef ParseLora(const std::string& text) {
  v1::LoraRef lora;
  lora.set_name(text);
  lora.set_strength(1.0);
  const size_t colon = text.rfind(':');
  double strength = 0;
  if (colon != std::string::npos && absl::SimpleAtod(text.substr(colon + 1), &strength)) {
    lora.set_name(text.substr(0, colon));
    lora.set_strength(strength);
  }
  return lora;
}

// The decoded output a file name asks for by its extension ("" for none of them).
std::string OutputOfExtension(const std::string& path) {
  const std::string extension = fs::path(path).extension().string();
  if (extension == ".mp4" || extension == ".png") return "video";
  if (extension == ".webp") return "webp";
  if (extension == ".safetensors") return "frames";
  return "";
}

v1::SampleJob ToJob(const SampleFlags& flags) {
  v1::SampleJob job;
  job.set_model(flags.model);
  job.set_dtype(flags.dtype);
  job.set_compute(flags.compute);
  job.set_attention(flags.attention);
  job.set_placement(flags.placement);
  job.set_swap_budget(flags.swap_budget);
  job.set_width(flags.width);
  job.set_height(flags.height);
  job.set_frames(flags.frames);
  job.set_steps(flags.steps);
  job.set_cfg(flags.cfg);
  job.set_sampler(flags.sampler);
  job.set_scheduler(flags.scheduler);
  job.set_shift(flags.shift);
  job.set_seed(flags.seed);
  job.set_denoise(flags.denoise);
  job.set_add_noise(!flags.no_noise);
  job.set_start_step(flags.start_step);
  job.set_end_step(flags.end_step);
  job.set_return_with_leftover_noise(flags.leftover_noise);
  for (double sigma : flags.sigmas) job.add_sigmas(sigma);
  job.set_low_noise_model(flags.low_noise_model);
  job.set_boundary(flags.boundary);
  for (const std::string& lora : flags.loras) *job.add_loras() = ParseLora(lora);
  for (const std::string& lora : flags.low_noise_loras)
    *job.add_low_noise_loras() = ParseLora(lora);
  job.set_preview_every(flags.preview_every);
  job.set_cpu(flags.cpu);
  job.set_output(flags.output.empty() ? OutputOfExtension(flags.out) : flags.output);
  job.set_vae(flags.vae);
  job.set_fps(flags.fps);
  if (flags.crf >= 0) job.set_crf(flags.crf);
  if (!flags.cache.empty()) {
    job.mutable_cache()->set_kind(flags.cache);
    job.mutable_cache()->set_threshold(flags.cache_threshold);
    for (double c : flags.cache_coefficients) job.mutable_cache()->add_coefficients(c);
    for (double r : flags.cache_mag_ratios) job.mutable_cache()->add_mag_ratios(r);
    job.mutable_cache()->set_max_skips(flags.cache_max_skips);
    if (flags.cache_start_percent >= 0) {
      job.mutable_cache()->set_start_percent(flags.cache_start_percent);
    }
    if (flags.cache_end_percent >= 0) job.mutable_cache()->set_end_percent(flags.cache_end_percent);
    if (flags.cache_retention_ratio >= 0) {
      job.mutable_cache()->set_retention_ratio(flags.cache_retention_ratio);
    }
  }
  v1::MeshSpec* mesh = job.mutable_mesh();
  mesh->set_dp(flags.dp);
  mesh->set_cfg(flags.cfg_parallel);
  mesh->set_ring(flags.ring);
  mesh->set_ulysses(flags.ulysses);
  return job;
}

absl::StatusOr<std::unique_ptr<client::JobClient>> ConnectJobs(
    const client::ClientOptions& options) {
  return client::JobClient::Connect(options);
}

// Writes <prefix>.latent, the decoded output (--out itself when it names a video file, else
// <prefix>.<format>) and the last preview; prints the paths.
int WriteOutputs(client::JobClient& jobs, const std::string& job_id, std::string prefix) {
  auto result = jobs.SampleResult(job_id);
  if (!result.ok()) return Fail(result.status());
  if (prefix.empty()) prefix = absl::StrCat("raylight-", job_id);
  std::string preview_suffix = ".png";
  if (!result->video().empty()) {
    const std::string format = result->video_format();
    std::string path = absl::StrCat(prefix, ".", format == "frames" ? "safetensors" : format);
    if (!OutputOfExtension(prefix).empty()) {
      path = prefix;
      prefix = fs::path(prefix).replace_extension().string();
      // A one-frame video asked for as x.mp4 comes back as a PNG: named for what it is.
      if (format == "png" && fs::path(path).extension() != ".png") path = prefix + ".png";
    }
    if (auto status = WriteFileAtomically(path, result->video()); !status.ok()) return Fail(status);
    std::cout << absl::StrFormat("%-8s %s (decoded in %.2f s)\n", format + ":",
                                 fs::absolute(path).string(), result->decode_seconds());
    preview_suffix = ".preview.png";
  }
  const std::string latent = prefix + ".latent";
  if (auto status = WriteFileAtomically(latent, result->latent()); !status.ok())
    return Fail(status);
  std::cout << "latent:  " << fs::absolute(latent).string() << "\n";
  if (!result->preview_png().empty()) {
    const std::string png = prefix + preview_suffix;
    if (auto status = WriteFileAtomically(png, result->preview_png()); !status.ok())
      return Fail(status);
    std::cout << "preview: " << fs::absolute(png).string() << "\n";
  }
  std::cout << absl::StrFormat(
      "sampled in %.2f s%s; placement %s\n", result->sample_seconds(),
      result->model_was_resident()
          ? " (model resident)"
          : absl::StrFormat(" after a %.2f s load", result->load_seconds()),
      result->placement());
  if (result->calls_reused() > 0) {
    std::cout << "step cache: " << result->calls_reused() << " of " << result->model_calls()
              << " model calls reused\n";
  }
  return 0;
}

}  // namespace

CLI::App* AddSampleCommand(CLI::App& app, SampleFlags& flags) {
  auto* sample = app.add_subcommand("sample", "sample a video or image on the cluster");
  AddModelFlags(*sample, flags);
  auto* cond = sample->add_option("--cond", flags.cond,
                                  "positive conditioning (safetensors: text [L, 4096])");
  auto* prompt = sample->add_option(
      "--prompt", flags.prompt, "a prompt, encoded on the cluster (ComfyUI's (word:1.2) weights)");
  cond->excludes(prompt);
  sample->add_option("--negative", flags.negative, "negative conditioning (needed when cfg != 1)");
  sample->add_option("--negative-prompt", flags.negative_prompt,
                     "with --prompt: the negative prompt (default: Wan's own)");
  sample->add_option("--text-encoder", flags.text_encoder,
                     "the umT5 file for --prompt (default: the one in a root's text_encoders/)");
  sample->add_option("--width", flags.width, "pixels")->capture_default_str();
  sample->add_option("--height", flags.height, "pixels")->capture_default_str();
  sample->add_option("--frames", flags.frames,
                     "4k+1 frames for a video model (default 81); image models make one");
  sample->add_option("--latent", flags.latent, "a starting .latent file (instead of the size)");
  sample->add_option("--low-noise-model", flags.low_noise_model,
                     "Wan 2.2 A14B: the low-noise expert (--model is the high-noise one)");
  sample->add_option("--low-noise-lora", flags.low_noise_loras,
                     "a LoRA for the low-noise expert, NAME[:STRENGTH] (repeatable)");
  sample
      ->add_option("--boundary", flags.boundary,
                   "the sigma below which the low-noise expert runs (0: 0.875 T2V, 0.900 I2V)")
      ->capture_default_str();
  sample->add_option("--steps", flags.steps)->capture_default_str();
  sample->add_option("--cfg", flags.cfg, "CFG scale")->capture_default_str();
  sample
      ->add_option("--sampler", flags.sampler,
                   absl::StrCat("one of: ", absl::StrJoin(samplers::kSamplerNames, ", ")))
      ->capture_default_str();
  sample
      ->add_option("--scheduler", flags.scheduler,
                   absl::StrCat("one of: ", absl::StrJoin(samplers::kSchedulerNames, ", ")))
      ->capture_default_str();
  sample->add_option("--shift", flags.shift, "flow shift (0: 5.0)")->capture_default_str();
  sample->add_option("--seed", flags.seed)->capture_default_str();
  sample->add_option("--denoise", flags.denoise)->capture_default_str();
  // KSamplerAdvanced: two chained jobs (e.g. Wan 2.2's high- and low-noise experts) are
  // `--end-step K --leftover-noise` then `--latent FIRST.latent --no-noise --start-step K`.
  sample->add_flag("--no-noise", flags.no_noise,
                   "add no noise: the latent is already noised (KSamplerAdvanced add_noise off)");
  sample->add_option("--start-step", flags.start_step, "the first step of the schedule to run")
      ->capture_default_str();
  sample->add_option("--end-step", flags.end_step, "steps from here on are not run")
      ->capture_default_str();
  sample->add_flag("--leftover-noise", flags.leftover_noise,
                   "a run cut by --end-step keeps its noise (return_with_leftover_noise)");
  sample
      ->add_option("--sigmas", flags.sigmas,
                   "an explicit descending schedule, e.g. 1,0.5,0 (SamplerCustom: replaces "
                   "--steps, --scheduler and --denoise)")
      ->delimiter(',');
  sample
      ->add_option("--preview-every", flags.preview_every, "a PNG preview every N steps (0: none)")
      ->capture_default_str();
  sample->add_option("--priority", flags.priority, "higher runs first")->capture_default_str();
  sample
      ->add_option("--output", flags.output,
                   "what to decode besides the latent: latent, video (MP4; one frame: PNG), webp, "
                   "frames (IMAGE safetensors); default: from --out's extension")
      ->check(CLI::IsMember({"latent", "video", "webp", "frames"}));
  sample->add_option(
      "--vae", flags.vae,
      "the VAE (default: the one in a root's vae/ that fits the model: a Wan VAE, or "
      "Flux's image VAE)");
  sample->add_option("--image", flags.image,
                     "with --prompt: the start image (PNG or JPEG; I2V and TI2V models)");
  sample->add_option("--end-image", flags.end_image,
                     "with --prompt: the end image (PNG or JPEG; FLF2V on I2V models)");
  sample->add_option("--clip-vision", flags.clip_vision,
                     "the CLIP vision tower for the images (default: the one in a root's "
                     "clip_vision/)");
  sample->add_option("--fps", flags.fps, "video frame rate (0: the model's)");
  sample->add_option("--crf", flags.crf, "H.264 quality 0..51 (default 19)");
  sample->add_option(
      "--cache", flags.cache,
      "step caching: teacache (reuse the blocks' residual while the modulated "
      "input changes little; Wan and the Flux families), magcache (by the model's calibrated "
      "magnitude ratios) or easycache (whole steps, while the predicted output "
      "change stays small; every family)");
  sample->add_option("--cache-threshold", flags.cache_threshold,
                     "the cache's threshold (0: the authors' for the model)");
  sample->add_option("--cache-max-skips", flags.cache_max_skips,
                     "MagCache's K: the most calls reused in a row (0: the authors' 2)");
  sample->add_option("--cache-retention-ratio", flags.cache_retention_ratio,
                     "MagCache's share of the first calls always computed (default 0.2)");
  sample->add_option("--cache-start-percent", flags.cache_start_percent,
                     "EasyCache: reuse from this share of the schedule on (default 0.15)");
  sample->add_option("--cache-end-percent", flags.cache_end_percent,
                     "EasyCache: compute every step after this share (default 0.95)");
  sample
      ->add_option("--cache-coefficients", flags.cache_coefficients,
                   "TeaCache's rescaling polynomial, highest power first (default: the "
                   "authors' for the model)")
      ->delimiter(',');
  sample
      ->add_option("--cache-mag-ratios", flags.cache_mag_ratios,
                   "MagCache's magnitude ratios, cond and uncond of each step in turn (default: "
                   "the authors' curve for the model)")
      ->delimiter(',');
  sample->add_option("--out", flags.out,
                     "output path prefix (default raylight-<job id>), or the video file: x.mp4, "
                     "x.webp, x.png (one frame), x.safetensors (frames)");
  sample->add_flag("--no-wait", flags.no_wait, "submit, print the job id and return");
  return sample;
}

int RunSample(const client::ClientOptions& options, const SampleFlags& flags) {
  v1::SampleJob job = ToJob(flags);
  if (flags.cond.empty() && flags.prompt.empty()) {
    return Fail(absl::InvalidArgumentError("--cond or --prompt is required"));
  }
  if (!flags.cond.empty()) {
    auto positive = ReadFile(flags.cond, "--cond");
    if (!positive.ok()) return Fail(positive.status());
    job.set_positive(*std::move(positive));
  }
  job.set_prompt(flags.prompt);
  if (flags.negative_prompt) job.set_negative_prompt(*flags.negative_prompt);
  job.set_text_encoder(flags.text_encoder);
  if (!flags.negative.empty()) {
    auto negative = ReadFile(flags.negative, "--negative");
    if (!negative.ok()) return Fail(negative.status());
    job.set_negative(*std::move(negative));
  }
  if (!flags.image.empty()) {
    auto image = ReadFile(flags.image, "--image");
    if (!image.ok()) return Fail(image.status());
    job.set_image(*std::move(image));
  }
  if (!flags.end_image.empty()) {
    auto image = ReadFile(flags.end_image, "--end-image");
    if (!image.ok()) return Fail(image.status());
    job.set_end_image(*std::move(image));
  }
  job.set_clip_vision(flags.clip_vision);
  if (!flags.latent.empty()) {
    auto latent = ReadFile(flags.latent, "--latent");
    if (!latent.ok()) return Fail(latent.status());
    job.set_latent(*std::move(latent));
  }
  auto jobs = ConnectJobs(options);
  if (!jobs.ok()) return Fail(jobs.status());
  auto submitted = (*jobs)->SubmitSample(job, flags.priority);
  if (!submitted.ok()) return Fail(submitted.status());
  const std::string job_id = submitted->job_id();
  std::cout << "job " << job_id << ": " << submitted->summary() << std::endl;
  if (flags.no_wait) return 0;
  std::cout << "(Ctrl-C leaves it running; `raylightctl jobs cancel " << job_id << "` stops it)"
            << std::endl;
  ProgressBar bar;
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  auto done = (*jobs)->Watch(job_id, [&](const v1::JobEvent& event) {
    if (event.has_info()) {
      const v1::JobInfo& info = event.info();
      if (info.state() != last_state) {
        last_state = info.state();
        std::string line = absl::StrCat("[", StateName(info.state()), "]");
        if (info.state() == v1::JOB_RUNNING) {
          absl::StrAppend(&line, " attempt ", info.attempts(), " on ", info.group_name());
        }
        if (!info.error().empty()) absl::StrAppend(&line, " ", info.error());
        bar.Message(line);
      }
      return;
    }
    v1::SampleProgress progress;
    if (!progress.ParseFromString(event.progress())) return;
    if (!progress.message().empty()) {
      bar.Message(progress.message());
    } else {
      bar.Update(progress.step(), progress.total(), progress.elapsed_seconds(),
                 absl::StrFormat("sigma %.3f", progress.sigma()));
    }
  });
  bar.Finish();
  if (!done.ok()) return Fail(done.status());
  if (done->state() != v1::JOB_SUCCEEDED) {
    return Fail(absl::AbortedError(
        absl::StrCat("job ", job_id, " ", StateName(done->state()), ": ", done->error())));
  }
  return WriteOutputs(**jobs, job_id, flags.out);
}

CLI::App* AddJobsCommand(CLI::App& app, JobsFlags& flags) {
  auto* jobs = app.add_subcommand("jobs", "list, show, cancel jobs and fetch results");
  jobs->require_subcommand(0, 1);
  auto* list = jobs->add_subcommand("list", "the newest jobs (the default)");
  list->add_option("--limit", flags.limit)->capture_default_str();
  auto* show = jobs->add_subcommand("show", "one job in full");
  show->add_option("job_id", flags.job_id)->required();
  auto* cancel = jobs->add_subcommand("cancel", "cancel a pending or running job");
  cancel->add_option("job_id", flags.job_id)->required();
  auto* result = jobs->add_subcommand("result", "write a finished job's .latent and preview");
  result->add_option("job_id", flags.job_id)->required();
  result->add_option("--out", flags.out, "output path prefix (default raylight-<job id>)");
  return jobs;
}

int RunJobs(const client::ClientOptions& options, CLI::App& command, const JobsFlags& flags) {
  auto jobs = ConnectJobs(options);
  if (!jobs.ok()) return Fail(jobs.status());
  if (command.got_subcommand("show")) {
    auto info = (*jobs)->Get(flags.job_id);
    if (!info.ok()) return Fail(info.status());
    std::cout << "job       " << info->job_id() << "\nkind      " << info->kind() << "\nstate     "
              << StateName(info->state()) << "\nsummary   " << info->summary() << "\npriority  "
              << info->priority() << "\nattempts  " << info->attempts() << " ("
              << info->failed_attempts() << " failed, " << info->max_retries()
              << " retries allowed)\ngroup     " << info->group_name() << "\nsubmitted "
              << Clock(info->submit_unix_ms()) << "\nstarted   " << Clock(info->start_unix_ms())
              << "\nended     " << Clock(info->end_unix_ms()) << "\nresult    "
              << HumanBytes(info->result_bytes()) << "\n";
    if (!info->error().empty()) std::cout << "error     " << info->error() << "\n";
    return 0;
  }
  if (command.got_subcommand("cancel")) {
    auto info = (*jobs)->Cancel(flags.job_id);
    if (!info.ok()) return Fail(info.status());
    std::cout << "job " << info->job_id() << ": " << StateName(info->state())
              << (info->state() == v1::JOB_RUNNING ? " (stops at its next step)" : "") << "\n";
    return 0;
  }
  if (command.got_subcommand("result")) return WriteOutputs(**jobs, flags.job_id, flags.out);
  auto list = (*jobs)->List({}, flags.limit);
  if (!list.ok()) return Fail(list.status());
  Table table({"JOB", "STATE", "PRIORITY", "ATTEMPTS", "SUBMITTED", "SUMMARY / ERROR"});
  for (const v1::JobInfo& info : *list) {
    table.Add({info.job_id(), StateName(info.state()), std::to_string(info.priority()),
               std::to_string(info.attempts()), Clock(info.submit_unix_ms()),
               info.error().empty() ? info.summary() : info.error()});
  }
  std::cout << table.Render();
  return 0;
}

CLI::App* AddModelsCommand(CLI::App& app, SampleFlags& load, std::string& unload_path) {
  auto* models = app.add_subcommand("models", "the models the workers keep loaded");
  models->require_subcommand(0, 1);
  models->add_subcommand("list", "every worker's loaded models (the default)");
  models->add_subcommand("available", "the models in the head's model roots, by name");
  auto* load_command =
      models->add_subcommand("load", "load a model on a group shaped by the mesh flags");
  AddModelFlags(*load_command, load);
  auto* unload = models->add_subcommand("unload", "unload a model (its file path) everywhere");
  unload->add_option("path", unload_path, "the model's first file, as listed (empty: all)");
  return models;
}

int RunModels(const client::ClientOptions& options, CLI::App& command, const SampleFlags& load,
              const std::string& unload_path) {
  auto jobs = ConnectJobs(options);
  if (!jobs.ok()) return Fail(jobs.status());
  if (command.got_subcommand("load")) {
    auto submitted = (*jobs)->SubmitLoad(ToJob(load));
    if (!submitted.ok()) return Fail(submitted.status());
    auto done = (*jobs)->Wait(submitted->job_id());
    if (!done.ok()) return Fail(done.status());
    if (done->state() != v1::JOB_SUCCEEDED) {
      return Fail(
          absl::AbortedError(absl::StrCat("load ", StateName(done->state()), ": ", done->error())));
    }
    std::cout << "loaded on " << done->group_name() << " (job " << done->job_id() << ")\n";
    return 0;
  }
  if (command.got_subcommand("unload")) {
    auto unloaded = (*jobs)->UnloadModels(unload_path);
    if (!unloaded.ok()) return Fail(unloaded.status());
    std::cout << "unloaded " << unloaded->size() << " model copies\n";
    return 0;
  }
  if (command.got_subcommand("available")) {
    auto description = (*jobs)->DescribeSampling();
    if (!description.ok()) return Fail(description.status());
    Table table({"MODEL", "KIND", "SIZE", "FILES"});
    for (const v1::ModelFile& model : description->models()) {
      // A model's kind is its family where the head could read it ("wan", "flux").
      const std::string kind = model.lora()             ? "lora"
                               : model.family().empty() ? "model"
                                                        : model.family();
      table.Add({model.name(), kind, HumanBytes(model.bytes()), std::to_string(model.files())});
    }
    std::cout << table.Render();
    return 0;
  }
  auto models = (*jobs)->ListModels();
  if (!models.ok()) return Fail(models.status());
  Table table({"WORKER", "MODEL", "VARIANT", "DTYPE", "PLACEMENT", "DEVICE", "HOST", "LAST USED"});
  for (const client::WorkerModels& worker : *models) {
    for (const v1::ModelInfo& model : worker.models) {
      table.Add({worker.actor.worker_id(), model.path(), model.variant(), model.dtype(),
                 model.placement(), HumanBytes(model.device_bytes()),
                 HumanBytes(model.host_bytes()), Clock(model.last_used_unix_ms())});
    }
  }
  std::cout << table.Render();
  return 0;
}

}  // namespace raylight::cli
