// One Wan denoising forward (batch 1, bf16, one GPU) at a video size, against diffusers'
// WanTransformer3DModel on the same checkpoint, inputs and GPU; model FLOP utilisation against a
// bf16 matmul peak measured in the same process; and load throughput of the checkpoint from the
// page cache to the GPU; the first forward's time over the later ones' (after a one-block warm-up
// unless --nowarm_up). Prints JSON lines (tests/bench/report.py turns them into tables).
//
//   wan_bench --checkpoint wan14b.safetensors --name wan14b_832x480x81
//
// The checkpoint is any Wan file our loader reads; diffusers needs the diffusers spelling, which
// raylight-make-checkpoint --spelling diffusers writes.
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "models/core/attention.h"
#include "models/core/dit_fused.h"
#include "models/core/flash_attention.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_model.h"
#include "tests/bench/matmul_peak.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

ABSL_FLAG(std::string, checkpoint, "",
          "Wan checkpoint (.safetensors, diffusers spelling for the anchor)");
ABSL_FLAG(std::string, name, "wan", "row name prefix, e.g. wan14b_832x480x81");
ABSL_FLAG(int64_t, frames, 21, "latent frames (81 video frames)");
ABSL_FLAG(int64_t, height, 60, "latent height (480 pixels)");
ABSL_FLAG(int64_t, width, 104, "latent width (832 pixels)");
ABSL_FLAG(int, runs, 3, "timed forwards after one warm-up");
ABSL_FLAG(bool, warm_up, true,
          "before the first forward, one through block 0 alone at the shape (WarmUpWanForward, "
          "what a load runs); false: the first forward meets the first-call costs");
ABSL_FLAG(bool, diffusers, true, "also time diffusers' forward (the anchor)");
ABSL_FLAG(bool, chains, false,
          "also the forward without the fused elementwise kernels (models/core/dit_fused.h), which "
          "are on by default: the unfused chains' time and how far the fused prediction is from "
          "theirs");
ABSL_FLAG(
    bool, fp8, false,
    "also the forward with fp8 compute (the linears as e4m3 GEMMs, models/core/fp8_linear.h)");
ABSL_FLAG(bool, fp8_attention, false,
          "also the forward with fp8 attention (cuDNN's fp8 kernel, models/core/fp8_attention.h), "
          "on the bf16 weights and, with --fp8, on fp8 compute's; and the attention alone at the "
          "shape, bf16 against fp8");

namespace raylight {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Emit(const std::string& name, double value, const std::string& unit) {
  std::printf("{\"name\": \"%s\", \"value\": %.4g, \"unit\": \"%s\"}\n", name.c_str(), value,
              unit.c_str());
  std::fflush(stdout);
}

// Dense FLOPs of one forward (linear layers and attention; elementwise work left out).
double ForwardFlops(const models::wan::WanConfig& c, int64_t tokens) {
  const double l = static_cast<double>(tokens), d = c.dim, f = c.ffn_dim, text = c.text_len;
  double block = 2 * l * (6 * d * d + 2 * d * f)      // self q k v o, cross q o, ffn
                 + 2 * text * 2 * d * d               // cross k v on the text tokens
                 + 4 * l * l * d + 4 * l * text * d;  // self and cross attention
  if (c.i2v()) block += 2 * c.image_tokens * 2 * d * d + 4 * l * c.image_tokens * d;
  return block * c.num_layers;
}

int Run() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  const std::string name = absl::GetFlag(FLAGS_name);
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "wan_bench needs a GPU\n");
    return 2;
  }
  const double peak = bench::MatmulPeakTflops();
  Emit("bf16_matmul_8192_tflops", peak, "TFLOP/s");

  models::PlacementOptions placement;
  placement.device = at::Device(at::kCUDA);
  placement.compute_dtype = at::kBFloat16;
  const auto load_start = Clock::now();
  auto loaded = models::wan::LoadWanResident({path}, placement);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    return 1;
  }
  c10::cuda::device_synchronize();
  const double load_s = Seconds(load_start);
  const double file_gb = std::filesystem::file_size(path) / 1e9;
  Emit(name + "_load_GBps", file_gb / load_s, "GB/s");
  // The staged copy alone (pinned buffers read in parallel: models/core/staged_upload.h), of the
  // whole load above (which also parses and converts).
  if (const auto* resident = dynamic_cast<const models::ResidentWeights*>(loaded->weights.get())) {
    Emit(name + "_upload_GBps", resident->upload().gb_per_second(), "GB/s");
  }

  testing_util::LatentSize size;
  size.frames = absl::GetFlag(FLAGS_frames);
  size.height = absl::GetFlag(FLAGS_height);
  size.width = absl::GetFlag(FLAGS_width);
  size.text_tokens = 512;
  const models::wan::WanConfig& config = loaded->config;
  models::wan::WanInputs inputs = testing_util::RandomWanInputs(config, size);
  const int64_t tokens = size.frames * (size.height / 2) * (size.width / 2);
  models::WeightProvider* weights = loaded->weights.get();
  models::ParallelContext context;  // the forward's: bf16 attention unless set below
  auto forward = [&] {
    auto out = models::wan::WanForward(config, inputs, context, *weights);
    if (!out.ok()) {
      std::fprintf(stderr, "%s\n", out.status().ToString().c_str());
      std::exit(1);
    }
    return *out;
  };
  if (absl::GetFlag(FLAGS_warm_up)) {
    const auto warm_start = Clock::now();
    if (absl::Status status =
            models::wan::WarmUpWanForward(config, inputs, models::ParallelContext{}, *weights);
        !status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
    c10::cuda::device_synchronize();
    Emit(name + "_warm_up_ms", Seconds(warm_start) * 1e3, "ms");
  }
  const auto first_start = Clock::now();
  at::Tensor ours = forward();
  c10::cuda::device_synchronize();
  const double first_ms = Seconds(first_start) * 1e3;
  Emit(name + "_first_step_ms", first_ms, "ms");
  const int runs = absl::GetFlag(FLAGS_runs);
  // Mean milliseconds of `runs` synchronised forwards (after the warm-up above).
  auto time_forwards = [&] {
    const auto start = Clock::now();
    for (int i = 0; i < runs; ++i) forward();
    c10::cuda::device_synchronize();
    return Seconds(start) * 1e3 / runs;
  };
  const double step_ms = time_forwards();
  Emit(name + "_step_ms_1gpu", step_ms, "ms");
  Emit(name + "_first_step_ratio", first_ms / step_ms, "ratio");
  const double tflops = ForwardFlops(config, tokens) / (step_ms / 1e3) / 1e12;
  Emit(name + "_tflops", tflops, "TFLOP/s");
  Emit(name + "_mfu", tflops / peak, "fraction");
  if (models::FlashAttentionSm90Runs(placement.device)) {
    // Ablation: the same forward with cuDNN's bf16 attention (the default before the Hopper
    // kernel, flash_attention.h), and how far its prediction is from the kernel's.
    const models::AttentionBackendScope cudnn(models::AttentionBackend::kCudnn);
    const at::Tensor cudnn_out = forward();
    c10::cuda::device_synchronize();
    const double cudnn_ms = time_forwards();
    Emit(name + "_step_ms_1gpu_cudnn_attention", cudnn_ms, "ms");
    Emit(name + "_over_cudnn_attention", step_ms / cudnn_ms, "ratio");
    Emit(name + "_rel_l2_vs_cudnn_attention", testing_util::RelativeL2(ours, cudnn_out), "");
  }
  {
    // Ablation: the same forward with libtorch's default SDPA kernel choice.
    const models::AttentionBackendScope sdpa(models::AttentionBackend::kSdpa);
    forward();
    c10::cuda::device_synchronize();
    Emit(name + "_step_ms_1gpu_default_sdpa", time_forwards(), "ms");
  }
  double chains_ms = 0;
  if (absl::GetFlag(FLAGS_chains) && models::FusedKernels()) {
    // The unfused chains against the fused kernels above, and how far the fused prediction moves.
    models::SetFusedKernels(false);
    const at::Tensor chains_out = forward();
    c10::cuda::device_synchronize();
    chains_ms = time_forwards();
    models::SetFusedKernels(true);
    Emit(name + "_chains_step_ms_1gpu", chains_ms, "ms");
    Emit(name + "_fused_over_chains", step_ms / chains_ms, "ratio");
    Emit(name + "_fused_rel_l2_vs_chains", testing_util::RelativeL2(ours, chains_out), "");
  }
  // A variant of the forward on the current `weights` (fp8 attention where `fp8_attention`): its
  // mean ms, its ratio to the bf16 forward and its prediction's distance from the bf16 one, as
  // <name>_<label>_step_ms_1gpu, _over_bf16 and _rel_l2_vs_bf16.
  auto measure_variant = [&](const std::string& label, bool fp8_attention) {
    context.fp8_attention = fp8_attention;
    const at::Tensor out = forward();
    c10::cuda::device_synchronize();
    const double ms = time_forwards();
    context.fp8_attention = false;
    Emit(name + "_" + label + "_step_ms_1gpu", ms, "ms");
    Emit(name + "_" + label + "_over_bf16", ms / step_ms, "ratio");
    Emit(name + "_" + label + "_rel_l2_vs_bf16", testing_util::RelativeL2(out, ours), "");
    return ms;
  };
  double fp8_ms = 0, fp8_all_ms = 0;
  if (absl::GetFlag(FLAGS_fp8)) {
    // The same file loaded for fp8 compute (quantised per output channel on the GPU at load).
    models::PlacementOptions fp8_placement = placement;
    fp8_placement.fp8_compute = true;
    const auto fp8_start = Clock::now();
    auto fp8 = models::wan::LoadWanResident({path}, fp8_placement);
    if (!fp8.ok()) {
      std::fprintf(stderr, "%s\n", fp8.status().ToString().c_str());
      return 1;
    }
    c10::cuda::device_synchronize();
    Emit(name + "_fp8_load_s", Seconds(fp8_start), "s");
    weights = fp8->weights.get();
    fp8_ms = measure_variant("fp8", false);
    // Both switches: the linears and the self-attention in fp8.
    if (absl::GetFlag(FLAGS_fp8_attention)) fp8_all_ms = measure_variant("fp8_all", true);
    weights = loaded->weights.get();
  }
  double fp8_attention_ms = 0;
  if (absl::GetFlag(FLAGS_fp8_attention)) {
    fp8_attention_ms = measure_variant("fp8_attention", true);  // fp8 attention, bf16 linears
  }
  {
    // The self-attention kernel by itself at the shape: the default bf16 kernel (the Hopper one
    // where it runs), cuDNN's bf16, and with --fp8_attention cuDNN's fp8 (with the quantisation
    // of q, k, v and the output's return to bf16).
    const at::TensorOptions bf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
    const at::Tensor q =
        at::randn({1, tokens, config.num_heads, config.dim / config.num_heads}, bf16);
    const at::Tensor k = at::randn_like(q), v = at::randn_like(q);
    auto time_attention = [&](models::AttentionBackend backend, bool fp8) {
      const models::AttentionBackendScope scope(backend);
      models::LocalAttention(q, k, v, fp8);
      c10::cuda::device_synchronize();
      const auto start = Clock::now();
      for (int i = 0; i < 10; ++i) models::LocalAttention(q, k, v, fp8);
      c10::cuda::device_synchronize();
      return Seconds(start) * 1e3 / 10;
    };
    const double bf16_attention_ms = time_attention(models::AttentionBackend::kAuto, false);
    const double cudnn_attention_ms = time_attention(models::AttentionBackend::kCudnn, false);
    Emit(name + "_attention_ms_bf16", bf16_attention_ms, "ms");
    Emit(name + "_attention_ms_cudnn", cudnn_attention_ms, "ms");
    Emit(name + "_attention_bf16_over_cudnn", bf16_attention_ms / cudnn_attention_ms, "ratio");
    const at::Tensor bf16_out = models::LocalAttention(q, k, v).to(at::kFloat);
    const at::Tensor cudnn_out = [&] {
      const models::AttentionBackendScope cudnn(models::AttentionBackend::kCudnn);
      return models::LocalAttention(q, k, v).to(at::kFloat);
    }();
    Emit(name + "_attention_bf16_rel_l2_vs_cudnn", testing_util::RelativeL2(bf16_out, cudnn_out),
         "");
    if (absl::GetFlag(FLAGS_fp8_attention)) {
      const double fp8_kernel_ms = time_attention(models::AttentionBackend::kAuto, true);
      Emit(name + "_attention_ms_fp8", fp8_kernel_ms, "ms");
      Emit(name + "_attention_fp8_over_bf16", fp8_kernel_ms / bf16_attention_ms, "ratio");
      Emit(name + "_attention_fp8_rel_l2_vs_bf16",
           testing_util::RelativeL2(models::LocalAttention(q, k, v, true).to(at::kFloat), bf16_out),
           "");
    }
  }
  std::fprintf(stderr, "%s: %s, %ld blocks, %ld tokens, load %.1f s for %.1f GB\n", name.c_str(),
               config.name.c_str(), static_cast<long>(config.num_layers), static_cast<long>(tokens),
               load_s, file_gb);

  if (absl::GetFlag(FLAGS_diffusers)) {
    loaded->weights.reset();  // the anchor needs the GPU memory
    c10::cuda::CUDACachingAllocator::emptyCache();
    testing_util::TempDir dir("wan-bench");
    double diffusers_ms = 0;
    auto reference = testing_util::DiffusersForward(dir.path(), config, path, inputs, "cuda",
                                                    "bf16", runs, &diffusers_ms);
    if (!reference.ok()) {
      std::fprintf(stderr, "%s\n", reference.status().ToString().c_str());
      return 1;
    }
    Emit(name + "_step_ms_1gpu_diffusers", diffusers_ms, "ms");
    Emit(name + "_bf16_step_ratio_vs_diffusers", step_ms / diffusers_ms, "ratio");
    if (fp8_ms > 0) Emit(name + "_fp8_step_ratio_vs_diffusers", fp8_ms / diffusers_ms, "ratio");
    if (fp8_all_ms > 0) {
      Emit(name + "_fp8_all_step_ratio_vs_diffusers", fp8_all_ms / diffusers_ms, "ratio");
    }
    if (fp8_attention_ms > 0) {
      Emit(name + "_fp8_attention_step_ratio_vs_diffusers", fp8_attention_ms / diffusers_ms,
           "ratio");
    }
    if (chains_ms > 0) {
      Emit(name + "_chains_step_ratio_vs_diffusers", chains_ms / diffusers_ms, "ratio");
    }
    Emit(name + "_rel_l2_vs_diffusers", testing_util::RelativeL2(ours, *reference), "");
  }
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return raylight::Run();
}
