// raylight-make-checkpoint: writes a random Wan checkpoint in the real format, for tests and for
// benchmarks at real sizes (no weights can be downloaded on the build or GPU machines).
//
//   raylight-make-checkpoint --preset wan2.1-t2v-14b --dtype bf16 --out wan14b.safetensors
#include <CLI/CLI.hpp>
#include <iostream>

#include "models/core/gguf.h"
#include "models/wan/wan_checkpoint_maker.h"

int main(int argc, char** argv) {
  using namespace raylight::models::wan;
  CLI::App app("raylight-make-checkpoint: a random Wan checkpoint in the real format");
  std::string preset = "tiny-t2v", dtype = "bf16", spelling = "official", out, device = "cpu";
  int64_t layers = 0;
  uint64_t seed = 0;
  app.add_option("--preset", preset, "Wan preset")->check(CLI::IsMember(WanPresetNames()));
  app.add_option("--layers", layers, "blocks to write (default: the preset's)");
  app.add_option("--dtype", dtype,
                 "stored dtype; a GGUF type (q8_0, q4_k, ...) writes a GGUF file of random "
                 "quantisation blocks")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "fp8", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                             "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"}));
  app.add_option("--spelling", spelling, "key names")
      ->check(CLI::IsMember({"official", "comfyui", "diffusers"}));
  app.add_option("--seed", seed, "random seed");
  app.add_option("--device", device, "where values are drawn (cpu, cuda, cuda:N)");
  app.add_option("--out", out, "output .safetensors path")->required();
  CLI11_PARSE(app, argc, argv);

  auto config = WanPreset(preset);
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 2;
  }
  if (layers > 0) config->num_layers = layers;
  MakeCheckpointOptions options;
  options.dtype = dtype == "f32"   ? at::kFloat
                  : dtype == "f16" ? at::kHalf
                  : dtype == "fp8" ? at::kFloat8_e4m3fn
                                   : at::kBFloat16;
  options.spelling = spelling == "comfyui"     ? KeySpelling::kComfyUi
                     : spelling == "diffusers" ? KeySpelling::kDiffusers
                                               : KeySpelling::kOfficial;
  options.seed = seed;
  if (dtype.front() == 'q') options.gguf = *raylight::models::ParseGgmlType(dtype);
  options.device = at::Device(device);
  if (auto status = MakeWanCheckpoint(*config, out, options); !status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  std::cout << out << ": " << config->name << ", " << config->num_layers << " blocks, "
            << config->ParameterCount() / 1e9 << "B parameters\n";
  return 0;
}
