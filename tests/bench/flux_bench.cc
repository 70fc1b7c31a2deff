// One Flux.1, FLUX.2, Chroma or Qwen-Image forward (batch 1, bf16, one GPU) at an image size with
// its text tokens, timed, with its output and inputs written for the anchor (tests/bench/
// flux_diffusers_anchor.py, flux2_diffusers_anchor.py, chroma_diffusers_anchor.py and
// qwen_image_diffusers_anchor.py run diffusers' transformer on the same checkpoint and inputs),
// model FLOP utilisation against a bf16 matmul peak measured in the same process, and the
// checkpoint's load throughput from the page cache; optionally the same forward with layer swap
// and with fp8 compute. Prints JSON lines in the results schema. An fp8-scaled checkpoint is
// dequantised to bf16 at load for the bf16 forward (its e4m3 bytes are what fp8 compute uses).
//
//   flux_bench --make --checkpoint flux1-dev.safetensors           a random bf16 checkpoint in
//                                                                  BFL's spelling (real sizes)
//   flux_bench --checkpoint F --inputs I --out O --name flux1_dev_1024x1024
//   flux_bench --family qwen_image --checkpoint F ...              a Qwen-Image or Chroma
//   flux_bench --family chroma --checkpoint F ...                  checkpoint (the anchor
//   flux_bench --family flux2 --checkpoint F ...                   scripts make them)
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "models/chroma/chroma_family.h"
#include "models/core/attention.h"
#include "models/core/flash_attention.h"
#include "models/core/safetensors_tensors.h"
#include "models/flux/flux_keys.h"
#include "models/flux/flux_loader.h"
#include "models/flux/flux_model.h"
#include "models/flux2/flux2_family.h"
#include "models/qwen_image/qwen_image_family.h"
#include "tests/bench/matmul_peak.h"
#include "tests/models/flux_test_util.h"

ABSL_FLAG(std::string, family, "flux",
          "flux, flux2, chroma or qwen_image (the same forward, other names and conditioning)");
ABSL_FLAG(bool, make, false, "write a random checkpoint of --preset to --checkpoint and exit");
ABSL_FLAG(std::string, preset, "flux1-dev", "the preset --make writes");
ABSL_FLAG(std::string, checkpoint, "", "Flux checkpoint");
ABSL_FLAG(std::string, inputs, "", "where the inputs go (for the anchor)");
ABSL_FLAG(std::string, out, "", "where the prediction goes (for the anchor's comparison)");
ABSL_FLAG(std::string, name, "flux1_dev_1024x1024", "row name prefix");
ABSL_FLAG(int64_t, width, 1024, "pixels");
ABSL_FLAG(int64_t, height, 1024, "pixels");
ABSL_FLAG(int64_t, text_tokens, 512, "T5 tokens (the pipelines pad to 512)");
ABSL_FLAG(int, runs, 5, "timed forwards after two warm-ups");
ABSL_FLAG(double, swap, 0,
          "also the forward with layer swap at this share of the blocks' bytes on the device "
          "(0: not): <name>_swap<percent>_forward and its ratio to the resident one");
ABSL_FLAG(bool, fp8, false,
          "also the forward with fp8 compute (e4m3 GEMMs): <name>_fp8_forward, its ratio to the "
          "bf16 one and its prediction's relative L2 from the bf16 prediction");
ABSL_FLAG(bool, fp8_attention, false,
          "also the resident forward with fp8 attention (models/core/fp8_attention.h): "
          "<name>_fp8_attention_forward, its ratio to the bf16 forward and its distance");
ABSL_FLAG(std::string, profile_trace, "",
          "also profile one forward (CPU ops and CUDA kernels) into this Chrome trace");

namespace raylight {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Emit(const std::string& name, double value, const std::string& unit,
          const std::string& anchor = "", double anchor_value = 0) {
  std::printf(
      "{\"name\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", \"anchor\": \"%s\", "
      "\"anchor_value\": %.6g}\n",
      name.c_str(), value, unit.c_str(), anchor.c_str(), anchor_value);
  std::fflush(stdout);
}

// Random weights of the preset in BFL's spelling, bf16: matrices at 1/sqrt(fan-in), norm
// scales around 1, biases small (drawn on the GPU, written tensor by tensor).
int Make() {
  auto config = models::flux::FluxPreset(absl::GetFlag(FLAGS_preset));
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  models::NamedTensors tensors;
  const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  for (const auto& [name, shape] :
       models::flux::FluxWeightShapes(*config, models::flux::FluxSpelling::kFused)) {
    at::Tensor t = at::randn(shape, options);
    if (shape.size() == 2) {
      t = t / std::sqrt(static_cast<double>(shape[1]));
    } else if (name.ends_with(".scale")) {
      t = 1 + 0.1 * t;
    } else {
      t = 0.02 * t;
    }
    tensors.emplace_back(name, t.to(at::kBFloat16).cpu());
  }
  const absl::Status written = models::WriteTensors(absl::GetFlag(FLAGS_checkpoint), tensors);
  if (!written.ok()) {
    std::fprintf(stderr, "%s\n", std::string(written.message()).c_str());
    return 1;
  }
  return 0;
}

int Run() {
  const std::string prefix = absl::GetFlag(FLAGS_name);
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  models::PlacementOptions placement;
  placement.device = at::Device(at::kCUDA, 0);
  placement.compute_dtype = at::kBFloat16;
  // The bf16 forward's weights all bf16 (an fp8-scaled file dequantised once, not per block).
  placement.keep_fp8 = false;
  const std::string family = absl::GetFlag(FLAGS_family);
  if (family != "flux" && family != "flux2" && family != "chroma" && family != "qwen_image") {
    std::fprintf(stderr, "--family: '%s' is not flux, flux2, chroma or qwen_image\n",
                 family.c_str());
    return 2;
  }
  const bool qwen = family == "qwen_image", chroma = family == "chroma", flux2 = family == "flux2";
  const auto load_start = Clock::now();
  models::flux::FluxConfig config;
  std::unique_ptr<models::WeightProvider> weights;
  auto load = [&](const models::WeightPlacement& where) -> absl::Status {
    auto loaded = qwen     ? models::qwen_image::LoadQwenImage({path}, placement, where)
                  : chroma ? models::chroma::LoadChroma({path}, placement, where)
                  : flux2  ? models::flux2::LoadFlux2({path}, placement, where)
                           : models::flux::LoadFlux({path}, placement, where);
    if (!loaded.ok()) return loaded.status();
    config = loaded->config;
    weights = std::move(loaded->weights);
    return absl::OkStatus();
  };
  absl::Status status = load(models::WeightPlacement::Resident());
  c10::cuda::device_synchronize();
  const double load_seconds = Seconds(load_start);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    return 1;
  }
  const double file_gb = static_cast<double>(std::filesystem::file_size(path)) / 1e9;
  Emit(prefix + "_load_throughput", file_gb / load_seconds, "GB/s");
  // FLUX.2's latent is its VAE's 2x2 patches already (128 channels at 1/16 of the pixels).
  const int64_t pixels_per_latent = flux2 ? 16 : 8;
  testing_util::FluxSize size{1, absl::GetFlag(FLAGS_height) / pixels_per_latent,
                              absl::GetFlag(FLAGS_width) / pixels_per_latent,
                              absl::GetFlag(FLAGS_text_tokens)};
  models::flux::FluxInputs inputs = testing_util::RandomFluxInputs(config, size, /*seed=*/1234);
  // Values whose x1000 bf16 holds exactly: diffusers scales them by 1000 in bf16 (750 would become
  // 752 there and move its whole time embedding; ours and ComfyUI's scale in fp32).
  inputs.t = at::full({1}, 0.5);
  // Qwen-Image has neither a guidance nor a pooled vector; FLUX.2 and Chroma no pooled vector,
  // and Chroma's guidance (ComfyUI's input) is 0 where diffusers, which has none, is the anchor.
  inputs.guidance = qwen ? at::Tensor() : chroma ? at::zeros({1}) : at::full({1}, 4.0);
  if (qwen || chroma || flux2) inputs.pooled = at::Tensor();
  if (!absl::GetFlag(FLAGS_inputs).empty()) {
    models::NamedTensors written = {{"x", inputs.x}, {"t", inputs.t}, {"context", inputs.context}};
    if (inputs.pooled.defined()) written.emplace_back("pooled", inputs.pooled);
    if (!qwen && !chroma) written.emplace_back("guidance", inputs.guidance);
    if (!models::WriteTensors(absl::GetFlag(FLAGS_inputs), written).ok()) return 1;
  }
  // On the device, as the engine hands them over (the timing is the forward's, not the copies').
  for (at::Tensor* t : {&inputs.x, &inputs.t, &inputs.context, &inputs.pooled, &inputs.guidance}) {
    if (t->defined()) *t = t->to(placement.device);
  }
  // Two warm-ups, then --runs timed forwards: the median ms and the last prediction; the first
  // forward's time in `first_ms` (null: not wanted). False when a forward fails.
  models::ParallelContext context;  // bf16 attention unless --fp8_attention's row sets it
  auto time_forwards = [&](double* median_ms, at::Tensor* prediction, double* first_ms) {
    std::vector<double> ms;
    for (int i = 0; i < absl::GetFlag(FLAGS_runs) + 2; ++i) {
      const auto start = Clock::now();
      auto forward = models::flux::FluxForward(config, inputs, context, *weights);
      c10::cuda::device_synchronize();
      if (!forward.ok()) {
        std::fprintf(stderr, "%s\n", std::string(forward.status().message()).c_str());
        return false;
      }
      if (i == 0 && first_ms != nullptr) *first_ms = Seconds(start) * 1000;
      if (i >= 2) ms.push_back(Seconds(start) * 1000);
      *prediction = *forward;
    }
    std::sort(ms.begin(), ms.end());
    *median_ms = ms[ms.size() / 2];
    return true;
  };
  double median = 0, first = 0;
  at::Tensor out;
  c10::cuda::CUDACachingAllocator::resetPeakStats(0);
  if (!time_forwards(&median, &out, &first)) return 1;
  Emit(prefix + "_first_forward", first, "ms");
  Emit(prefix + "_forward", median, "ms");
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  Emit(prefix + "_peak_allocated", static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30),
       "GiB");
  // Every token meets 4 hidden^2 multiply-adds of attention projections per block and the MLP's
  // two matrices (12 hidden^2 in all for Flux.1's 4x MLP, 13 for FLUX.2's SwiGLU; each stream its
  // own in the double blocks), and attention 2 L^2 hidden per block; modulation is per sample.
  const double tokens =
      static_cast<double>(config.Tokens(size.height, size.width) + size.text_tokens);
  const double h = static_cast<double>(config.hidden);
  const double macs_per_token =
      4.0 * h * h + static_cast<double>(config.mlp_in() + config.mlp_hidden) * h;
  const double flops = static_cast<double>(config.num_blocks()) *
                       (2.0 * macs_per_token * tokens + 4.0 * tokens * tokens * h);
  const double peak = bench::MatmulPeakTflops();
  Emit(prefix + "_mfu", flops / (median / 1000) / 1e12 / peak, "ratio",
       "measured bf16 matmul peak, TFLOP/s", peak);
  if (const std::string trace = absl::GetFlag(FLAGS_profile_trace); !trace.empty()) {
    namespace profiler = torch::autograd::profiler;
    using torch::profiler::impl::ActivityType;
    const std::set<ActivityType> activities = {ActivityType::CPU, ActivityType::CUDA};
    const torch::profiler::impl::ProfilerConfig profile(
        torch::profiler::impl::ProfilerState::KINETO);
    profiler::prepareProfiler(profile, activities);
    profiler::enableProfiler(profile, activities);
    auto forward = models::flux::FluxForward(config, inputs, models::ParallelContext{}, *weights);
    c10::cuda::device_synchronize();
    profiler::disableProfiler()->save(trace);
    if (!forward.ok()) return 1;
  }
  if (!absl::GetFlag(FLAGS_out).empty()) {
    if (!models::WriteTensors(absl::GetFlag(FLAGS_out), {{"out", out.cpu()}}).ok()) return 1;
  }
  if (models::FlashAttentionSm90Runs(at::Device(at::kCUDA))) {
    // The same forward on cuDNN's bf16 attention (the default before the Hopper kernel).
    double cudnn_median = 0;
    at::Tensor cudnn_out;
    {
      const models::AttentionBackendScope cudnn(models::AttentionBackend::kCudnn);
      if (!time_forwards(&cudnn_median, &cudnn_out, nullptr)) return 1;
    }
    Emit(prefix + "_cudnn_attention_forward", cudnn_median, "ms");
    Emit(prefix + "_over_cudnn_attention", median / cudnn_median, "ratio",
         "the forward on cuDNN's bf16 attention, ms", cudnn_median);
    const at::Tensor reference = cudnn_out.to(at::kFloat);
    Emit(prefix + "_rel_l2_vs_cudnn_attention",
         ((out.to(at::kFloat) - reference).norm() / reference.norm()).item<double>(), "ratio",
         "the prediction on cuDNN's bf16 attention", 0);
  }
  if (absl::GetFlag(FLAGS_fp8_attention)) {
    context.fp8_attention = true;
    double fp8_attention_median = 0;
    at::Tensor fp8_attention_out;
    if (!time_forwards(&fp8_attention_median, &fp8_attention_out, nullptr)) return 1;
    context.fp8_attention = false;
    Emit(prefix + "_fp8_attention_forward", fp8_attention_median, "ms");
    Emit(prefix + "_fp8_attention_ratio", fp8_attention_median / median, "ratio",
         "the bf16 forward, ms", median);
    const at::Tensor reference = out.to(at::kFloat);
    Emit(prefix + "_fp8_attention_rel_l2_vs_bf16",
         ((fp8_attention_out.to(at::kFloat) - reference).norm() / reference.norm()).item<double>(),
         "ratio", "the bf16 prediction", 0);
  }
  if (const double share = absl::GetFlag(FLAGS_swap); share > 0) {
    // The same forward with the blocks streamed from pinned host memory, `share` of their bytes
    // resident (the buffers included), after the resident copy is gone.
    weights.reset();
    c10::cuda::CUDACachingAllocator::emptyCache();
    models::SwapOptions swap;
    swap.budget_fraction = share;
    if (auto swapped = load(models::WeightPlacement::Swapped(swap)); !swapped.ok()) {
      std::fprintf(stderr, "%s\n", std::string(swapped.message()).c_str());
      return 1;
    }
    double swap_median = 0;
    at::Tensor swap_out;
    if (!time_forwards(&swap_median, &swap_out, nullptr)) return 1;
    const std::string label = absl::StrCat(prefix, "_swap", std::lround(share * 100));
    Emit(label + "_forward", swap_median, "ms");
    Emit(label + "_ratio", swap_median / median, "ratio", "the resident forward, ms", median);
    // The same weights, only moved: the same prediction.
    Emit(label + "_max_abs_diff_vs_resident", (swap_out - out).abs().max().item<double>(), "");
  }
  if (absl::GetFlag(FLAGS_fp8)) {
    // fp8 compute (models/core/fp8_linear.h) resident, after the bf16 copy is gone: an fp8-scaled
    // file's e4m3 bytes as stored, a bf16 file quantised per output channel at load.
    weights.reset();
    c10::cuda::CUDACachingAllocator::emptyCache();
    placement.fp8_compute = true;
    placement.keep_fp8 = true;
    if (auto fp8 = load(models::WeightPlacement::Resident()); !fp8.ok()) {
      std::fprintf(stderr, "%s\n", std::string(fp8.message()).c_str());
      return 1;
    }
    double fp8_median = 0;
    at::Tensor fp8_out;
    if (!time_forwards(&fp8_median, &fp8_out, nullptr)) return 1;
    Emit(prefix + "_fp8_forward", fp8_median, "ms");
    Emit(prefix + "_fp8_ratio", fp8_median / median, "ratio", "the bf16 forward, ms", median);
    const at::Tensor reference = out.to(at::kFloat);
    Emit(prefix + "_fp8_rel_l2_vs_bf16",
         ((fp8_out.to(at::kFloat) - reference).norm() / reference.norm()).item<double>(), "ratio",
         "the bf16 prediction", 0);
  }
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return absl::GetFlag(FLAGS_make) ? raylight::Make() : raylight::Run();
}
