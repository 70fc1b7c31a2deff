// raylight-sample-local: one sampling run in this process, without the cluster — the reference
// a job through the head must reproduce. The same inputs as a SampleJob (checkpoint, conditioning
// files, size, sampler settings), plain KSample with CfgDenoiser on one device (the CPU in f32, or
// --device=cuda with --dtype=bf16 as a GPU worker runs); writes a .latent.
#include <ATen/ATen.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "models/core/latent_file.h"
#include "models/core/mag_cache.h"
#include "models/wan/wan_conditioning.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_mag_cache.h"
#include "models/wan/wan_model.h"
#include "models/wan/wan_tea_cache.h"
#include "samplers/ksampler.h"

int main(int argc, char** argv) {
  using namespace raylight;
  std::string checkpoint, cond, negative, out, sampler = "euler", scheduler = "simple";
  std::string device_name = "cpu", dtype_name = "f32";
  int width = 0, height = 0, frames = 0, steps = 4;
  double cfg = 1.0, shift = 5.0;
  uint64_t seed = 0;
  bool teacache = false, teacache_plain = false;
  double teacache_threshold = 0;
  std::vector<double> teacache_coefficients;
  std::vector<double> magcache_ratios;
  double magcache_threshold = 0, magcache_retention = -1;
  int magcache_max_skips = 0;
  CLI::App app("raylight-sample-local: one single-process sampling run (test reference)");
  app.add_option("--checkpoint", checkpoint)->required();
  app.add_option("--cond", cond)->required();
  app.add_option("--negative", negative);
  app.add_option("--width", width)->required();
  app.add_option("--height", height)->required();
  app.add_option("--frames", frames)->required();
  app.add_option("--steps", steps);
  app.add_option("--cfg", cfg);
  app.add_option("--shift", shift);
  app.add_option("--sampler", sampler);
  app.add_option("--scheduler", scheduler);
  app.add_option("--seed", seed);
  app.add_option("--out", out)->required();
  app.add_option("--device", device_name)->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", dtype_name)->check(CLI::IsMember({"f32", "bf16"}));
  bool fp8_compute = false;
  double easycache_threshold = -1, easycache_start = -1, easycache_end = -1;
  app.add_option("--easycache-threshold", easycache_threshold,
                 "reuse steps as SampleJob.cache {kind: easycache} does, at this threshold");
  app.add_option("--easycache-start-percent", easycache_start);
  app.add_option("--easycache-end-percent", easycache_end);
  app.add_flag("--fp8-compute", fp8_compute, "the linears as fp8 GEMMs, as SampleJob.compute fp8");
  app.add_flag("--teacache", teacache, "cache steps as SampleJob.cache {kind: teacache} does");
  app.add_option("--teacache-threshold", teacache_threshold);
  app.add_option("--teacache-coefficients", teacache_coefficients)->delimiter(',');
  app.add_flag("--teacache-plain", teacache_plain, "without the retention steps");
  app.add_option("--magcache-ratios", magcache_ratios,
                 "cache steps as SampleJob.cache {kind: magcache} does, with these ratios")
      ->delimiter(',');
  app.add_option("--magcache-threshold", magcache_threshold);
  app.add_option("--magcache-max-skips", magcache_max_skips);
  app.add_option("--magcache-retention-ratio", magcache_retention);
  CLI11_PARSE(app, argc, argv);

  models::PlacementOptions placement;
  placement.device = device_name == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  placement.compute_dtype = dtype_name == "bf16" ? at::kBFloat16 : at::kFloat;
  placement.fp8_compute = fp8_compute;
  const at::Device device = placement.device;
  auto loaded = models::wan::LoadWanResident({checkpoint}, placement);
  if (!loaded.ok()) {
    std::cerr << loaded.status() << "\n";
    return 1;
  }
  const models::wan::WanConfig& config = loaded->config;
  auto positive = models::wan::ReadWanConditioning(cond, config);
  if (!positive.ok()) {
    std::cerr << positive.status() << "\n";
    return 1;
  }
  models::wan::WanConditioning uncond = *positive;
  if (!negative.empty()) {
    auto read = models::wan::ReadWanConditioning(negative, config);
    if (!read.ok()) {
      std::cerr << read.status() << "\n";
      return 1;
    }
    uncond = *read;
  }
  const models::ParallelContext single;
  std::map<int, std::unique_ptr<models::wan::WanStepCache>> caches;  // by branch
  std::optional<models::TeaCacheSettings> tea_cache;
  if (teacache) {
    auto settings = models::wan::WanTeaCacheSettings(config, width, height,
                                                     {.threshold = teacache_threshold,
                                                      .coefficients = teacache_coefficients,
                                                      .retention_steps = !teacache_plain,
                                                      .steps = steps});
    if (!settings.ok()) {
      std::cerr << settings.status() << "\n";
      return 1;
    }
    tea_cache = *settings;
  }
  std::vector<bool> mag_schedule;  // MagCache's, per step; empty: none
  if (!magcache_ratios.empty()) {
    auto settings = models::wan::WanMagCacheSettings(config, width, height,
                                                     {.threshold = magcache_threshold,
                                                      .max_skips = magcache_max_skips,
                                                      .retention_ratio = magcache_retention,
                                                      .ratios = magcache_ratios});
    if (!settings.ok()) {
      std::cerr << settings.status() << "\n";
      return 1;
    }
    mag_schedule = models::MagCacheSchedule(*settings, steps, /*two_branches=*/cfg != 1.0);
  }
  samplers::ModelFn model = [&](const at::Tensor& x, double timestep,
                                samplers::Branch branch) -> absl::StatusOr<at::Tensor> {
    auto inputs = [&](bool use_cond) {
      models::wan::WanInputs in;
      in.x = x;
      in.t = at::full({1}, timestep, at::TensorOptions().dtype(at::kFloat).device(device));
      in.context = (use_cond ? positive->text : uncond.text).to(device);
      return in;
    };
    models::wan::WanInputs batch = samplers::InputsFor(branch, inputs, models::wan::BatchInputs);
    if (tea_cache.has_value() || !mag_schedule.empty()) {
      auto& cache = caches[static_cast<int>(branch)];
      if (cache == nullptr && tea_cache.has_value()) {
        cache = std::make_unique<models::wan::WanStepCache>(
            std::make_unique<models::TeaCachePolicy>(*tea_cache), !teacache_plain);
      } else if (cache == nullptr) {
        cache = std::make_unique<models::wan::WanStepCache>(
            std::make_unique<models::ScheduledSkips>(mag_schedule), true);
      }
      batch.step_cache = cache.get();
    }
    return models::wan::WanForward(config, batch, single, *loaded->weights);
  };
  samplers::KSamplerOptions options;
  options.seed = seed;
  options.steps = steps;
  options.cfg = cfg;
  options.sampler = sampler;
  options.scheduler = scheduler;
  auto latent_format = models::LatentFormatForChannels(config.out_channels);
  if (!latent_format.ok()) {
    std::cerr << latent_format.status() << "\n";
    return 1;
  }
  options.latent_format = *latent_format;  // the result in ComfyUI's LATENT convention, as a job's
  if (easycache_threshold >= 0) {
    auto easy = samplers::MakeEasyCacheSettings(
        easycache_threshold, easycache_start >= 0 ? std::optional(easycache_start) : std::nullopt,
        easycache_end >= 0 ? std::optional(easycache_end) : std::nullopt);
    if (!easy.ok()) {
      std::cerr << easy.status() << "\n";
      return 1;
    }
    options.easy_cache = *easy;
  }
  at::Tensor latent =
      at::zeros({1, config.out_channels, (frames - 1) / 4 + 1, height / 8, width / 8}, device);
  auto result =
      samplers::KSample(model, samplers::ModelSampling::DiscreteFlow(shift), latent, options);
  if (!result.ok()) {
    std::cerr << result.status() << "\n";
    return 1;
  }
  if (auto status = models::WriteLatentFile(out, result->to(at::kCPU)); !status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  int reused = 0;
  for (const auto& [branch, cache] : caches) reused += cache->policy->reused();
  if (!caches.empty()) std::cout << "step cache reused " << reused << " calls\n";
  return 0;
}
