#include "samplers/ksampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/common/status_macros.h"
#include "samplers/custom_sigmas.h"
#include "samplers/schedulers.h"

namespace raylight::samplers {

at::Tensor PrepareNoise(uint64_t seed, at::IntArrayRef shape) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, generator, at::TensorOptions().dtype(at::kFloat).device(at::kCPU));
}

ModelFn SwitchExperts(ModelFn high_noise, ModelFn low_noise, double boundary_sigma) {
  return [high = std::move(high_noise), low = std::move(low_noise), boundary_sigma](
             const at::Tensor& x, double timestep, Branch branch) -> absl::StatusOr<at::Tensor> {
    return timestep >= boundary_sigma * 1000 ? high(x, timestep, branch) : low(x, timestep, branch);
  };
}

Denoiser CfgDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg, bool batched,
                     std::shared_ptr<EasyCache> cache) {
  return [model, &sampling, cfg, batched, cache](const at::Tensor& x,
                                                 double sigma) -> absl::StatusOr<at::Tensor> {
    const at::Tensor input = sampling.CalculateInput(sigma, x);
    const double timestep = sampling.Timestep(sigma);
    const bool both = cfg != 1.0;
    std::optional<BranchOutputs> reused;
    if (cache != nullptr) reused = cache->Reuse(input, sigma, both, both && !batched ? 2 : 1);
    at::Tensor cond, uncond;
    if (reused.has_value()) {
      cond = std::move(reused->cond);
      uncond = std::move(reused->uncond);
    } else if (both && batched) {
      auto outputs = model(input, timestep, Branch::kBoth);
      if (!outputs.ok()) return outputs.status();
      if (outputs->dim() < 1 || outputs->size(0) != 2 * input.size(0)) {
        return absl::InternalError(
            absl::StrCat("cfg: the model returned ", outputs->dim() < 1 ? 0 : outputs->size(0),
                         " samples for cond and uncond of batch ", input.size(0)));
      }
      cond = outputs->narrow(0, 0, input.size(0));
      uncond = outputs->narrow(0, input.size(0), input.size(0));
    } else {
      auto out = model(input, timestep, Branch::kCond);
      if (!out.ok()) return out.status();
      cond = *std::move(out);
      if (both) {
        out = model(input, timestep, Branch::kUncond);
        if (!out.ok()) return out.status();
        uncond = *std::move(out);
      }
    }
    const BranchOutputs outputs{std::move(cond), std::move(uncond)};
    if (cache != nullptr && !reused.has_value()) cache->Computed(input, outputs);
    return GuidedDenoised(sampling, sigma, x, outputs, cfg);
  };
}

at::Tensor GuidedDenoised(const ModelSampling& sampling, double sigma, const at::Tensor& x,
                          const BranchOutputs& outputs, double cfg) {
  at::Tensor denoised_cond = sampling.CalculateDenoised(sigma, outputs.cond, x);
  if (!outputs.uncond.defined()) return denoised_cond;
  at::Tensor denoised_uncond = sampling.CalculateDenoised(sigma, outputs.uncond, x);
  return denoised_uncond + (denoised_cond - denoised_uncond) * cfg;
}

// The EasyCache state of one run of `options` (none when it asks for none).
std::shared_ptr<EasyCache> EasyCacheFor(const KSamplerOptions& options,
                                        const ModelSampling& sampling) {
  if (!options.easy_cache.has_value()) return nullptr;
  return std::make_shared<EasyCache>(*options.easy_cache, sampling, options.easy_cache_stats);
}

absl::StatusOr<at::Tensor> KSample(const ModelFn& model, const ModelSampling& sampling,
                                   const at::Tensor& latent, const KSamplerOptions& o,
                                   const StepCallback& callback) {
  return KSampleWith(
      CfgDenoiser(model, sampling, o.cfg, o.batch_cfg.value_or(false), EasyCacheFor(o, sampling)),
      sampling, latent, o, callback);
}

absl::StatusOr<std::vector<double>> RunSigmas(const ModelSampling& sampling,
                                              const KSamplerOptions& o) {
  if (o.start_step < 0 || o.start_step > kMaxScheduleSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("start_step: ", o.start_step, " is outside [0, ", kMaxScheduleSteps, "]"));
  }
  if (o.end_step < 0 || o.end_step > kMaxScheduleSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("end_step: ", o.end_step, " is outside [0, ", kMaxScheduleSteps, "]"));
  }
  std::vector<double> sigmas;
  if (!o.sigmas.empty()) {
    RL_RETURN_IF_ERROR(CheckCustomSigmas(o.sigmas, kMaxScheduleSteps));
    sigmas = o.sigmas;
  } else {
    RL_ASSIGN_OR_RETURN(sigmas,
                        KSamplerSigmas(o.scheduler, o.sampler, sampling, o.steps, o.denoise));
  }
  // ComfyUI's KSampler.sample: the end first (with force_full_denoise the cut schedule still
  // ends at 0), then the start.
  const int last = static_cast<int>(sigmas.size()) - 1;
  if (o.end_step < last) {
    sigmas.resize(o.end_step + 1);
    if (!o.return_with_leftover_noise) sigmas.back() = 0;
  }
  if (o.start_step >= static_cast<int>(sigmas.size()) - 1) return std::vector<double>();
  sigmas.erase(sigmas.begin(), sigmas.begin() + o.start_step);
  return sigmas;
}

absl::StatusOr<ExpertRuns> SplitForExperts(const ModelSampling& sampling,
                                           const KSamplerOptions& options, double boundary) {
  if (!(boundary > 0 && boundary < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("boundary: ", boundary, " is not in (0, 1)"));
  }
  KSamplerOptions uncut = options;
  uncut.start_step = 0;
  uncut.end_step = kMaxScheduleSteps;
  RL_ASSIGN_OR_RETURN(const std::vector<double> schedule, RunSigmas(sampling, uncut));
  const int last = static_cast<int>(schedule.size()) - 1;
  int switch_step = 0;
  while (switch_step < last && schedule[switch_step] >= boundary) ++switch_step;
  ExpertRuns runs;
  runs.switch_step = switch_step;
  const int end = std::min(options.end_step, last);
  const int steps = std::max(0, end - options.start_step);
  if (switch_step <= options.start_step) {
    runs.low_noise = options;
    runs.low_noise_steps = steps;
  } else if (switch_step >= end) {
    runs.high_noise = options;
    runs.high_noise_steps = steps;
  } else {
    runs.high_noise_steps = switch_step - options.start_step;
    runs.low_noise_steps = end - switch_step;
    runs.high_noise = options;
    runs.high_noise->end_step = switch_step;
    runs.high_noise->return_with_leftover_noise = true;
    runs.low_noise = options;
    runs.low_noise->start_step = switch_step;
    runs.low_noise->add_noise = false;
  }
  return runs;
}

absl::StatusOr<at::Tensor> KSampleWith(const Denoiser& denoiser, const ModelSampling& sampling,
                                       const at::Tensor& latent, const KSamplerOptions& o,
                                       const StepCallback& callback) {
  if (!(o.cfg >= 0 && o.cfg <= 100)) {
    return absl::InvalidArgumentError(absl::StrCat("cfg: ", o.cfg, " is outside [0, 100]"));
  }
  if (o.preview_every < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("preview_every: ", o.preview_every, " is negative"));
  }
  RL_ASSIGN_OR_RETURN(const std::vector<double> sigmas, RunSigmas(sampling, o));
  // Nothing to run: ComfyUI hands the latent back as it came.
  if (sigmas.size() < 2) return latent.to(at::kFloat);
  at::Tensor start = latent.to(at::kFloat);
  if (o.latent_format != nullptr && at::count_nonzero(start).item<int64_t>() > 0) {
    start = models::ProcessIn(*o.latent_format, start);
  }
  const at::Tensor initial_noise = o.add_noise
                                       ? PrepareNoise(o.seed, latent.sizes()).to(latent.device())
                                       : at::zeros_like(start);
  // ComfyUI's max_denoise: the run starts at (or above) the model's largest sigma.
  const double first = sigmas.front(), top = sampling.sigma_max();
  const bool max_denoise =
      std::abs(first - top) <= 1e-5 * std::max(std::abs(first), std::abs(top)) || first > top;
  at::Tensor x = sampling.NoiseScaling(first, initial_noise, start, max_denoise);
  Denoiser masked;
  if (o.denoise_mask.defined()) {
    RL_ASSIGN_OR_RETURN(at::Tensor mask, PrepareDenoiseMask(o.denoise_mask, x.sizes()));
    masked = InpaintDenoiser(denoiser, mask.to(x.device()), start, initial_noise, sampling,
                             o.inpaint_input);
  }
  SamplerOptions sampler_options = o.sampler_options;
  sampler_options.sampling = &sampling;
  NoiseSampler noise = UsesBrownianNoise(o.sampler) ? BrownianNoiseSampler(x, o.seed, sigmas)
                                                    : SeededNoiseSampler(x, o.seed);
  const models::LatentFormat* preview_format = o.latent_format;
  if (preview_format == nullptr && o.preview_every > 0) {
    auto by_channels = models::LatentFormatForChannels(x.dim() >= 2 ? x.size(1) : 0);
    if (by_channels.ok()) preview_format = *by_channels;
  }
  StepCallback with_previews = callback;
  if (callback && o.preview_every > 0 && preview_format != nullptr) {
    with_previews = [&](const StepInfo& info) {
      if (info.step % o.preview_every != 0 && info.step != info.total - 1) return callback(info);
      StepInfo previewed = info;
      auto png = LatentPreviewPng(*info.denoised, *preview_format);
      // A preview is best effort: a latent it cannot render still reports progress.
      if (png.ok()) previewed.preview_png = &*png;
      callback(previewed);
    };
  }
  RL_ASSIGN_OR_RETURN(at::Tensor out, Sample(o.sampler, masked ? masked : denoiser, x, sigmas,
                                             noise, sampler_options, with_previews));
  // ComfyUI's UniPC cannot step to sigma 0 and sets the last sigma to 0.001 in the caller's
  // (float32) sigma tensor, in place: KSampler's inverse noise scaling then sees 0.001 too.
  double last_sigma = sigmas.back();
  if (last_sigma == 0 && IsUniPc(o.sampler)) last_sigma = static_cast<float>(kUniPcLastSigma);
  out = sampling.InverseNoiseScaling(last_sigma, out);
  if (o.latent_format != nullptr) out = models::ProcessOut(*o.latent_format, out);
  return out;
}

}  // namespace raylight::samplers
