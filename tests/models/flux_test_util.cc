#include "tests/models/flux_test_util.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/safetensors_tensors.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"

namespace raylight::testing_util {

models::flux::FluxInputs RandomFluxInputs(const models::flux::FluxConfig& c, const FluxSize& size,
                                          uint64_t seed) {
  if (seed == 0) seed = std::random_device{}();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  models::flux::FluxInputs in;
  in.x = at::randn({size.batch, c.latent_channels, size.height, size.width}, gen);
  in.t = at::rand({size.batch}, gen) * 0.98 + 0.01;
  in.context = at::randn({size.batch, size.text_tokens, c.context_dim}, gen);
  in.pooled = at::randn({size.batch, c.vec_dim}, gen);
  if (c.guidance_embed) in.guidance = at::rand({size.batch}, gen) * 4 + 1;
  return in;
}

absl::StatusOr<FluxReference> RunFluxReference(const std::string& dir,
                                               const models::flux::FluxConfig& c,
                                               const models::flux::FluxInputs& inputs,
                                               const FluxReferenceOptions& options) {
  const std::string input_path = dir + "/flux_inputs.safetensors";
  models::NamedTensors tensors = {
      {"x", inputs.x},
      {"t", inputs.t},
      {"context", inputs.context},
      {"pooled", inputs.pooled},
      {"guidance", inputs.guidance.defined() ? inputs.guidance : at::zeros_like(inputs.t)}};
  for (size_t i = 0; i < inputs.references.size(); ++i) {
    tensors.emplace_back(absl::StrCat("ref_", i), inputs.references[i]);
  }
  if (auto status = models::WriteTensors(input_path, tensors); !status.ok()) return status;
  const std::string config = absl::StrCat(
      "{\"hidden\": ", c.hidden, ", \"heads\": ", c.num_heads, ", \"depth\": ", c.depth,
      ", \"depth_single\": ", c.depth_single, ", \"context_dim\": ", c.context_dim,
      ", \"vec_dim\": ", c.vec_dim, ", \"guidance_embed\": ", c.guidance_embed ? "true" : "false",
      ", \"axes_dim\": [", absl::StrJoin(c.axes_dim, ", "), "]}");
  std::vector<std::string> argv = {RAYLIGHT_TEST_PYTHON,
                                   RAYLIGHT_FLUX_REFERENCE,
                                   "--config",
                                   config,
                                   "--seed",
                                   absl::StrCat(std::random_device{}()),
                                   "--inputs",
                                   input_path,
                                   "--out-dir",
                                   dir,
                                   "--device",
                                   options.device,
                                   "--dtype",
                                   options.dtype};
  if (!options.diffusers) argv.push_back("--skip-diffusers");
  if (options.comfyui) {
    argv.insert(argv.end(), {"--comfyui-tarball", RAYLIGHT_COMFYUI_TARBALL, "--workdir",
                             RAYLIGHT_COMFYUI_WORKDIR});
  }
  const std::string log = dir + "/flux_reference.log";
  if (auto ran = RunToCompletion(argv, log, std::chrono::seconds(900)); !ran.ok()) {
    return absl::InternalError(
        absl::StrCat("flux_reference.py failed (see ", log, "): ", ran.message()));
  }
  auto expected = ReadTensors(dir + "/expected.safetensors");
  if (!expected.ok()) return expected.status();
  FluxReference reference;
  if (options.diffusers) {
    reference.diffusers_checkpoint = dir + "/diffusers.safetensors";
    reference.diffusers = (*expected)["diffusers"];
  }
  if (options.comfyui) {
    reference.comfyui_checkpoint = dir + "/comfyui.safetensors";
    reference.comfyui = (*expected)["comfyui"];
  }
  return reference;
}

}  // namespace raylight::testing_util
