// raylight-make-conditioning: writes a random Wan conditioning file (wan_conditioning.h's layout)
// for a preset, to pair with raylight-make-checkpoint's random weights in demos and tests. Real
// conditioning comes from a text encoder run outside Raylight.
//
//   raylight-make-conditioning --preset tiny-t2v --tokens 12 --seed 1 --out cond.safetensors
#include <CLI/CLI.hpp>
#include <iostream>

#include "models/wan/wan_conditioning.h"

int main(int argc, char** argv) {
  using namespace raylight::models::wan;
  CLI::App app("raylight-make-conditioning: a random Wan conditioning file");
  std::string preset = "tiny-t2v", out;
  int64_t tokens = 12, frames = 1, height = 8, width = 8;
  uint64_t seed = 0;
  app.add_option("--preset", preset, "Wan preset")->check(CLI::IsMember(WanPresetNames()));
  app.add_option("--tokens", tokens, "text tokens")
      ->check(CLI::Range(int64_t{1}, WanConfig::kMaxTextTokens));
  app.add_option("--frames", frames, "I2V: latent frames of y")->check(CLI::PositiveNumber);
  app.add_option("--height", height, "I2V: latent height of y")->check(CLI::PositiveNumber);
  app.add_option("--width", width, "I2V: latent width of y")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "random seed");
  app.add_option("--out", out, "output .safetensors path")->required();
  CLI11_PARSE(app, argc, argv);

  auto config = WanPreset(preset);
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 2;
  }
  const WanConditioning conditioning =
      RandomWanConditioning(*config, tokens, seed, frames, height, width);
  if (auto status = WriteWanConditioning(out, conditioning); !status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  std::cout << out << ": " << preset << " conditioning, " << tokens << " tokens\n";
  return 0;
}
