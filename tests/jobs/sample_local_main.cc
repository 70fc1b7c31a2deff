// raylight-sample-local: one sampling run in this process, without the cluster — the reference
// a job through the head must reproduce. The same inputs as a SampleJob (checkpoint, conditioning
// files, size, sampler settings), plain KSample with CfgDenoiser on one device; writes a .latent.
#include <ATen/ATen.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "models/wan/wan_conditioning.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_model.h"
#include "samplers/ksampler.h"
#include "samplers/latent_file.h"

int main(int argc, char** argv) {
  using namespace raylight;
  std::string checkpoint, cond, negative, out, sampler = "euler", scheduler = "simple";
  int width = 0, height = 0, frames = 0, steps = 4;
  double cfg = 1.0, shift = 5.0;
  uint64_t seed = 0;
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
  CLI11_PARSE(app, argc, argv);

  auto loaded = models::wan::LoadWanResident({checkpoint}, {});
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
  samplers::ModelFn model = [&](const at::Tensor& x, double timestep,
                                bool use_cond) -> absl::StatusOr<at::Tensor> {
    models::wan::WanInputs in;
    in.x = x;
    in.t = at::full({1}, timestep, at::kFloat);
    in.context = use_cond ? positive->text : uncond.text;
    return models::wan::WanForward(config, in, single, *loaded->weights);
  };
  samplers::KSamplerOptions options;
  options.seed = seed;
  options.steps = steps;
  options.cfg = cfg;
  options.sampler = sampler;
  options.scheduler = scheduler;
  at::Tensor latent =
      at::zeros({1, config.out_channels, (frames - 1) / 4 + 1, height / 8, width / 8});
  auto result =
      samplers::KSample(model, samplers::ModelSampling::DiscreteFlow(shift), latent, options);
  if (!result.ok()) {
    std::cerr << result.status() << "\n";
    return 1;
  }
  if (auto status = samplers::WriteLatentFile(out, *result); !status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  return 0;
}
