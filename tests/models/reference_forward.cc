#include "tests/models/reference_forward.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"

namespace raylight::testing_util {

absl::StatusOr<ReferenceForward> RunReferenceForward(
    const std::string& script, const std::string& config_json, const models::NamedTensors& inputs,
    const std::string& dir, const std::string& comfyui_workdir, const ReferenceOptions& options) {
  const std::string input_path = dir + "/inputs.safetensors";
  if (auto status = models::WriteTensors(input_path, inputs); !status.ok()) return status;
  std::vector<std::string> argv = {RAYLIGHT_TEST_PYTHON,
                                   script,
                                   "--config",
                                   config_json,
                                   "--seed",
                                   absl::StrCat(std::random_device{}()),
                                   "--inputs",
                                   input_path,
                                   "--out-dir",
                                   dir};
  if (options.device != "cpu" || options.dtype != "f32") {
    argv.insert(argv.end(), {"--device", options.device, "--dtype", options.dtype});
  }
  if (!options.diffusers) argv.push_back("--skip-diffusers");
  if (options.comfyui) {
    argv.insert(argv.end(),
                {"--comfyui-tarball", RAYLIGHT_COMFYUI_TARBALL, "--workdir", comfyui_workdir});
  }
  const std::string log = dir + "/reference.log";
  if (auto ran = RunToCompletion(argv, log, std::chrono::seconds(900)); !ran.ok()) {
    return absl::InternalError(absl::StrCat(script, " failed (see ", log, "): ", ran.message()));
  }
  auto expected = ReadTensors(dir + "/expected.safetensors");
  if (!expected.ok()) return expected.status();
  ReferenceForward reference;
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
