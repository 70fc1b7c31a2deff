#include "tests/models/wan_test_util.h"

#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "tests/util/run_command.h"

namespace raylight::testing_util {

using models::wan::WanConfig;
using models::wan::WanInputs;

models::wan::WanInputs RandomWanInputs(const WanConfig& c, const LatentSize& s) {
  at::manual_seed(std::random_device{}());
  WanInputs in;
  const int64_t noise_channels = c.i2v() ? 16 : c.in_channels;
  in.x = at::randn({s.batch, noise_channels, s.frames, s.height, s.width});
  const int64_t tokens = s.frames * (s.height / 2) * (s.width / 2);
  if (c.per_token_timesteps()) {
    at::Tensor t = at::rand({s.batch, 1}) * 1000;
    in.t = t.expand({s.batch, tokens}).clone();
    in.t.slice(1, 0, tokens / s.frames).zero_();  // the conditioning first frame
  } else {
    in.t = at::rand({s.batch}) * 1000;
  }
  in.context = at::randn({s.batch, s.text_tokens, c.text_dim});
  if (c.i2v()) {
    in.y = at::randn({s.batch, c.in_channels - noise_channels, s.frames, s.height, s.width});
    // FLF2V: a start and an end image's tokens.
    in.clip_fea = at::randn(
        {s.batch, c.flf_pos_tokens > 0 ? c.flf_pos_tokens : c.image_tokens, c.image_dim});
  }
  return in;
}

std::string MakeCheckpoint(const std::string& dir, const WanConfig& config,
                           const models::wan::MakeCheckpointOptions& options,
                           const std::string& name) {
  const std::string path = absl::StrCat(dir, "/", name, ".safetensors");
  absl::Status status = models::wan::MakeWanCheckpoint(config, path, options);
  if (!status.ok()) {
    std::fprintf(stderr, "cannot make checkpoint: %s\n", status.ToString().c_str());
    std::abort();
  }
  return path;
}

absl::StatusOr<at::Tensor> DiffusersForward(const std::string& dir, const WanConfig& c,
                                            const std::string& checkpoint, const WanInputs& inputs,
                                            const std::string& device, const std::string& dtype,
                                            int time_runs, double* forward_ms) {
  const std::string input_path = dir + "/diffusers_inputs.safetensors";
  const std::string out_path = dir + "/diffusers_out.safetensors";
  models::NamedTensors tensors;
  tensors.emplace_back("x", inputs.y.defined() ? at::cat({inputs.x, inputs.y}, 1) : inputs.x);
  tensors.emplace_back("t", inputs.t);
  tensors.emplace_back("context", inputs.context);
  if (inputs.clip_fea.defined()) tensors.emplace_back("clip_fea", inputs.clip_fea);
  if (auto status = models::WriteTensors(input_path, tensors); !status.ok()) return status;
  const std::string family = c.i2v() ? "i2v" : c.per_token_timesteps() ? "ti2v" : "t2v";
  const std::string config = absl::StrCat(
      "{\"family\": \"", family, "\", \"dim\": ", c.dim, ", \"num_heads\": ", c.num_heads,
      ", \"in_channels\": ", c.in_channels, ", \"out_channels\": ", c.out_channels,
      ", \"text_dim\": ", c.text_dim, ", \"freq_dim\": ", c.freq_dim, ", \"ffn_dim\": ", c.ffn_dim,
      ", \"num_layers\": ", c.num_layers, ", \"eps\": ", c.eps, ", \"image_dim\": ", c.image_dim,
      ", \"flf_pos_tokens\": ", c.flf_pos_tokens, "}");
  const std::string log_path = dir + "/diffusers.log";
  absl::Status ran = RunToCompletion(
      {RAYLIGHT_TEST_PYTHON, RAYLIGHT_DIFFUSERS_SCRIPT, "--config", config, "--checkpoint",
       checkpoint, "--inputs", input_path, "--out", out_path, "--device", device, "--dtype", dtype,
       "--time-runs", absl::StrCat(time_runs)},
      log_path, std::chrono::seconds(900));
  if (!ran.ok()) {
    return absl::InternalError(
        absl::StrCat("diffusers reference failed; is diffusers installed in ", RAYLIGHT_TEST_PYTHON,
                     "'s environment? ", ran.message()));
  }
  if (forward_ms != nullptr) {
    std::ifstream log(log_path);
    std::string line;
    const std::string key = "{\"diffusers_forward_ms\": ";
    while (std::getline(log, line)) {
      if (line.rfind(key, 0) == 0) *forward_ms = std::stod(line.substr(key.size()));
    }
  }
  auto file = models::SafetensorsFile::Open(out_path);
  if (!file.ok()) return file.status();
  auto view = models::ViewTensor(*file, (*file)->header().tensors.at(0));
  if (!view.ok()) return view.status();
  return view->clone();
}

double RelativeL2(const at::Tensor& actual, const at::Tensor& expected) {
  at::Tensor a = actual.to(at::kCPU, at::kDouble);
  at::Tensor e = expected.to(at::kCPU, at::kDouble);
  return ((a - e).norm() / e.norm()).item<double>();
}

absl::StatusOr<std::map<std::string, at::Tensor>> ReadTensors(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), {});
  return models::ParseTensors(bytes, path);
}

}  // namespace raylight::testing_util
