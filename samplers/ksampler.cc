#include "samplers/ksampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"
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

Denoiser CfgDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                     bool batched) {
  return [model, &sampling, cfg, batched](const at::Tensor& x,
                                          double sigma) -> absl::StatusOr<at::Tensor> {
    const at::Tensor input = sampling.CalculateInput(sigma, x);
    const double timestep = sampling.Timestep(sigma);
    at::Tensor cond, uncond;
    if (cfg != 1.0 && batched) {
      auto both = model(input, timestep, Branch::kBoth);
      if (!both.ok()) return both.status();
      if (both->dim() < 1 || both->size(0) != 2 * input.size(0)) {
        return absl::InternalError(
            absl::StrCat("cfg: the model returned ", both->dim() < 1 ? 0 : both->size(0),
                         " samples for cond and uncond of batch ", input.size(0)));
      }
      cond = both->narrow(0, 0, input.size(0));
      uncond = both->narrow(0, input.size(0), input.size(0));
    } else {
      auto out = model(input, timestep, Branch::kCond);
      if (!out.ok()) return out.status();
      cond = *std::move(out);
      if (cfg != 1.0) {
        out = model(input, timestep, Branch::kUncond);
        if (!out.ok()) return out.status();
        uncond = *std::move(out);
      }
    }
    at::Tensor denoised_cond = sampling.CalculateDenoised(sigma, cond, x);
    if (cfg == 1.0) return denoised_cond;
    at::Tensor denoised_uncond = sampling.CalculateDenoised(sigma, uncond, x);
    return denoised_uncond + (denoised_cond - denoised_uncond) * cfg;
  };
}

absl::StatusOr<at::Tensor> KSample(const ModelFn& model, const ModelSampling& sampling,
                                   const at::Tensor& latent, const KSamplerOptions& o,
                                   const StepCallback& callback) {
  return KSampleWith(CfgDenoiser(model, sampling, o.cfg, o.batch_cfg.value_or(false)), sampling,
                     latent, o, callback);
}

absl::StatusOr<at::Tensor> KSampleWith(const Denoiser& denoiser, const ModelSampling& sampling,
                                       const at::Tensor& latent, const KSamplerOptions& o,
                                       const StepCallback& callback) {
  if (!(o.cfg >= 0 && o.cfg <= 100)) {
    return absl::InvalidArgumentError(absl::StrCat("cfg: ", o.cfg, " is outside [0, 100]"));
  }
  auto sigmas = KSamplerSigmas(o.scheduler, o.sampler, sampling, o.steps, o.denoise);
  if (!sigmas.ok()) return sigmas.status();
  const at::Tensor initial_noise = PrepareNoise(o.seed, latent.sizes()).to(latent.device());
  // ComfyUI's max_denoise: the run starts at (or above) the model's largest sigma.
  const double first = sigmas->front(), top = sampling.sigma_max();
  const bool max_denoise =
      std::abs(first - top) <= 1e-5 * std::max(std::abs(first), std::abs(top)) || first > top;
  at::Tensor x =
      sampling.NoiseScaling(sigmas->front(), initial_noise, latent.to(at::kFloat), max_denoise);
  SamplerOptions sampler_options = o.sampler_options;
  sampler_options.sampling = &sampling;
  NoiseSampler noise = UsesBrownianNoise(o.sampler) ? BrownianNoiseSampler(x, o.seed)
                                                    : SeededNoiseSampler(x, o.seed);
  if (o.preview_every < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("preview_every: ", o.preview_every, " is negative"));
  }
  StepCallback with_previews = callback;
  if (callback && o.preview_every > 0) {
    with_previews = [&](const StepInfo& info) {
      if (info.step % o.preview_every != 0 && info.step != info.total - 1) return callback(info);
      StepInfo previewed = info;
      auto png = LatentPreviewPng(*info.denoised, o.preview_format);
      // A preview is best effort: a latent it cannot render still reports progress.
      if (png.ok()) previewed.preview_png = &*png;
      callback(previewed);
    };
  }
  auto out = Sample(o.sampler, denoiser, x, *sigmas, noise, sampler_options, with_previews);
  if (!out.ok()) return out.status();
  return sampling.InverseNoiseScaling(sigmas->back(), *out);
}

}  // namespace raylight::samplers
