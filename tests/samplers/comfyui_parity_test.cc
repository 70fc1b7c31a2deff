// KSample against ComfyUI's own sampling code (issue #22): the unmodified ComfyUI 0.3.64 source
// from ../shared/third_party, unpacked per test, run by tests/samplers/comfyui_reference.py on the
// same small rectified-flow network, the same seeds and the same LATENT. Every case goes from
// ComfyUI's LATENT (the VAE's space) to ComfyUI's LATENT, so the latent convention, the schedules,
// the KSamplerAdvanced cuts, UniPC's last sigma and the samplers are all checked at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "models/core/latent_format.h"
#include "models/core/safetensors_tensors.h"
#include "samplers/ksampler.h"
#include "samplers/schedulers.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::samplers {
namespace {

// Runs the reference (which unpacks ComfyUI into `dir`) on `cases` (JSON) and `inputs`.
using Outputs = std::map<std::string, at::Tensor>;

absl::StatusOr<Outputs> RunComfyUi(const testing_util::TempDir& dir, const std::string& cases,
                                   const models::NamedTensors& inputs) {
  const std::string log = dir.path() + "/comfyui.log";
  const std::string cases_path = dir.path() + "/cases.json";
  std::ofstream(cases_path) << cases;
  const std::string in = dir.path() + "/in.safetensors", out = dir.path() + "/out.safetensors";
  if (auto status = models::WriteTensors(in, inputs); !status.ok()) return status;
  if (auto status = testing_util::RunToCompletion(
          {RAYLIGHT_TEST_PYTHON, RAYLIGHT_COMFYUI_REFERENCE, "--comfyui-tarball",
           RAYLIGHT_COMFYUI_TARBALL, "--workdir", dir.path(), "--cases", cases_path, "--inputs", in,
           "--out", out},
          log, std::chrono::seconds(600));
      !status.ok()) {
    return absl::InternalError(
        absl::StrCat("the ComfyUI reference failed (", log, "): ", status.message()));
  }
  auto file = models::SafetensorsFile::Open(out);
  if (!file.ok()) return file.status();
  Outputs tensors;
  for (const auto& info : (*file)->header().tensors) {
    auto view = models::ViewTensor(*file, info);
    if (!view.ok()) return view.status();
    tensors[info.name] = view->clone();
  }
  return tensors;
}

// Every number as the same double on both sides (StrCat would keep six digits).
std::string Num(double value) { return absl::StrFormat("%.17g", value); }

double RelativeL2(const at::Tensor& ours, const at::Tensor& reference) {
  return ((ours - reference).norm() / reference.norm().clamp_min(1e-30)).item<double>();
}

// The network both sides run: velocity a x + b tanh(x) t / 1000 + c + d roll(x, 1 frame); the
// roll mixes frames, so that what a noise mask keeps reaches what it samples.
struct Network {
  double a, b, c, d;
};

// In the reference's float32 order of operations: ComfyUI hands the network
// timestep(sigma) = sigma * 1000 as a float32 tensor (lms's high-order steps amplify a one-ulp
// difference in the network's output to ~1e-5 of the result).
ModelFn NetworkFn(const Network& n) {
  return [n](const at::Tensor& x, double timestep, Branch) -> absl::StatusOr<at::Tensor> {
    const float t = static_cast<float>(timestep / 1000) * 1000.0f;
    return x * n.a + at::tanh(x) * n.b * (t / 1000.0f) + n.c + at::roll(x, 1, -3) * n.d;
  };
}

struct Case {
  std::string name, sampler, scheduler;
  int steps = 6;
  double denoise = 1.0;
  uint64_t seed = 0;
  bool nonzero_latent = false;
  std::string chained_from;  // starts from this case's result
  bool add_noise = true;
  int start_step = 0, end_step = 10000;
  bool leftover = false;
  bool wan22 = false;
  std::vector<double> sigmas;
  std::string mask;    // a LATENT noise mask: "mask21" / "mask22" (see below), or none
  bool clean = false;  // the kept part enters clean (Wan 2.2's WAN22), else re-noised
};

// The second of two chained KSamplerAdvanced runs: from `first`'s LATENT (cut at step 3 with its
// leftover noise), without new noise, to the end of the schedule.
Case SecondHalf(const Case& first, std::string name) {
  Case second = first;
  second.name = std::move(name);
  second.chained_from = first.name;
  second.add_noise = false;
  second.start_step = 3;
  second.end_step = 10000;
  second.leftover = false;
  return second;
}

TEST(ComfyUiParityTest, KSampleGivesComfyUisLatent) {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0, 1);
  const Network net{0.1 + 0.4 * unit(rng), -0.3 + 0.6 * unit(rng), -0.1 + 0.2 * unit(rng),
                    -0.2 + 0.4 * unit(rng)};
  // A shift in quarters: shift and shift - 1 are exact in float32, so the flow table's top sigma
  // is exactly 1 on both sides (an arbitrary double can put ComfyUI's float32 table one ulp above
  // 1, where the rectified-flow ancestral samplers' log-SNR is NaN).
  const double shift = 1.0 + 0.25 * static_cast<int>(rng() % 29);
  std::vector<Case> cases;
  const std::vector<std::string> samplers = {"euler",
                                             "euler_ancestral",
                                             "heun",
                                             "dpm_2",
                                             "dpm_2_ancestral",
                                             "lms",
                                             "dpmpp_2s_ancestral",
                                             "dpmpp_sde",
                                             "dpmpp_2m",
                                             "dpmpp_2m_sde",
                                             "dpmpp_3m_sde",
                                             "lcm",
                                             "res_multistep",
                                             "ddim",
                                             "uni_pc",
                                             "uni_pc_bh2"};
  // beta at an even and an odd step count: an even count puts a sigma at the table's middle.
  const std::vector<std::pair<std::string, int>> schedules = {
      {"simple", 7}, {"beta", 6}, {"beta", 7}, {"karras", 6}, {"normal", 5}};
  for (const std::string& sampler : samplers) {
    for (const auto& [scheduler, steps] : schedules) {
      Case c;
      c.name = absl::StrCat(sampler, "_", scheduler, steps);
      c.sampler = sampler;
      c.scheduler = scheduler;
      c.steps = steps;
      c.seed = rng() % (uint64_t{1} << 53);
      cases.push_back(c);
    }
  }
  // vid2vid from a LATENT; KSamplerAdvanced's two halves (Wan 2.2's chained experts); a custom
  // schedule; a start past the end (the LATENT comes back as given); the 48-channel format.
  for (const char* sampler : {"euler", "uni_pc", "dpmpp_2m"}) {
    Case v2v{.name = absl::StrCat("denoise_", sampler), .sampler = sampler, .scheduler = "simple"};
    v2v.steps = 5;
    v2v.denoise = 0.6;
    v2v.seed = rng() % 100000;
    v2v.nonzero_latent = true;
    cases.push_back(v2v);
    Case first = v2v;
    first.name = absl::StrCat("first_half_", sampler);
    first.denoise = 1.0;
    first.nonzero_latent = false;
    first.steps = 8;
    first.end_step = 3;
    first.leftover = true;
    cases.push_back(first);
    cases.push_back(SecondHalf(first, absl::StrCat("second_half_", sampler)));
    Case cut = first;
    cut.name = absl::StrCat("cut_to_zero_", sampler);
    cut.leftover = false;
    cases.push_back(cut);
  }
  Case custom{.name = "custom_sigmas", .sampler = "dpmpp_2m", .scheduler = "simple"};
  custom.sigmas = {0.97, 0.8, 0.55, 0.3, 0.1, 0.0};
  custom.seed = rng() % 100000;
  cases.push_back(custom);
  Case past_end = custom;
  past_end.name = "start_past_end";
  past_end.sigmas.clear();
  past_end.steps = 4;
  past_end.start_step = 4;
  past_end.nonzero_latent = true;
  cases.push_back(past_end);
  Case wan22{.name = "wan22_euler", .sampler = "euler", .scheduler = "simple"};
  wan22.wan22 = true;
  wan22.seed = rng() % 100000;
  wan22.denoise = 0.8;
  wan22.nonzero_latent = true;
  cases.push_back(wan22);

  // A LATENT noise mask: inpainting a vid2vid LATENT (SetLatentNoiseMask's fractional mask at
  // another size, resized; the kept part re-noised), over both halves of a chained run, and
  // Wan22ImageToVideoLatent's (first frame kept, clean).
  for (const char* sampler : {"euler", "dpmpp_2m_sde", "uni_pc"}) {
    Case inpaint{.name = absl::StrCat("inpaint_", sampler), .sampler = sampler};
    inpaint.scheduler = "simple";
    inpaint.seed = rng() % 100000;
    inpaint.nonzero_latent = true;
    inpaint.mask = "mask21";
    cases.push_back(inpaint);
    Case start_image = inpaint;
    start_image.name = absl::StrCat("start_image_", sampler);
    start_image.wan22 = true;
    start_image.mask = "mask22";
    start_image.clean = true;
    cases.push_back(start_image);
  }
  Case masked_first{.name = "inpaint_first_half", .sampler = "euler", .scheduler = "simple"};
  masked_first.seed = rng() % 100000;
  masked_first.nonzero_latent = true;
  masked_first.mask = "mask21";
  masked_first.steps = 8;
  masked_first.end_step = 3;
  masked_first.leftover = true;
  cases.push_back(masked_first);
  cases.push_back(SecondHalf(masked_first, "inpaint_second_half"));

  // A LATENT like a VAE's: per-channel offsets and scales around Wan's statistics.
  const std::vector<int64_t> shape21 = {1, 16, 2, 4, 6}, shape22 = {1, 48, 2, 4, 6};
  at::manual_seed(rng());
  const at::Tensor latent21 = models::ProcessOut(models::Wan21LatentFormat(), at::randn(shape21));
  const at::Tensor latent22 = models::ProcessOut(models::Wan22LatentFormat(), at::randn(shape22));
  const at::Tensor mask21 = at::rand({3, 7, 9});
  at::Tensor mask22 = at::ones({1, 1, 2, 4, 6});
  mask22.narrow(2, 0, 1).zero_();
  std::string json = "{\"cases\": [";
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::string sigmas;
    for (size_t k = 0; k < c.sigmas.size(); ++k)
      absl::StrAppend(&sigmas, k ? "," : "", Num(c.sigmas[k]));
    const std::vector<int64_t>& shape = c.wan22 ? shape22 : shape21;
    absl::StrAppend(&json, i ? "," : "", "{\"name\":\"", c.name, "\",\"sampler\":\"", c.sampler,
                    "\",\"scheduler\":\"", c.scheduler, "\",\"steps\":", c.steps,
                    ",\"denoise\":", Num(c.denoise), ",\"seed\":", c.seed, ",\"latent\":\"",
                    !c.chained_from.empty() ? "@" + c.chained_from
                    : c.nonzero_latent      ? std::string(c.wan22 ? "latent22" : "latent21")
                                            : std::string(),
                    "\",\"shape\":[", shape[0], ",", shape[1], ",", shape[2], ",", shape[3], ",",
                    shape[4], "],\"add_noise\":", c.add_noise ? "true" : "false",
                    ",\"start_step\":", c.start_step, ",\"end_step\":", c.end_step,
                    ",\"return_with_leftover_noise\":", c.leftover ? "true" : "false",
                    ",\"format\":\"", c.wan22 ? "wan22" : "wan21", "\",\"shift\":", Num(shift),
                    ",\"sigmas\":[", sigmas, "],\"a\":", Num(net.a), ",\"b\":", Num(net.b),
                    ",\"c\":", Num(net.c), ",\"d\":", Num(net.d), ",\"mask\":\"", c.mask,
                    "\",\"inpaint\":\"", c.clean ? "clean" : "renoise", "\"}");
  }
  json += "]}";
  testing_util::TempDir dir("comfyui_parity");
  auto reference = RunComfyUi(
      dir, json,
      {{"latent21", latent21}, {"latent22", latent22}, {"mask21", mask21}, {"mask22", mask22}});
  ASSERT_TRUE(reference.ok()) << reference.status();

  const ModelSampling flow = ModelSampling::DiscreteFlow(shift);
  const ModelFn model = NetworkFn(net);
  std::map<std::string, at::Tensor> ours_by_name;
  double worst = 0;
  std::string worst_case;
  for (const Case& c : cases) {
    KSamplerOptions options;
    options.seed = c.seed;
    options.steps = c.steps;
    options.cfg = 1.0;
    options.sampler = c.sampler;
    options.scheduler = c.scheduler;
    options.denoise = c.denoise;
    options.add_noise = c.add_noise;
    options.start_step = c.start_step;
    options.end_step = c.end_step;
    options.return_with_leftover_noise = c.leftover;
    options.sigmas = c.sigmas;
    options.latent_format = c.wan22 ? &models::Wan22LatentFormat() : &models::Wan21LatentFormat();
    if (c.mask == "mask21") options.denoise_mask = mask21;
    if (c.mask == "mask22") options.denoise_mask = mask22;
    options.inpaint_input = c.clean ? InpaintInput::kClean : InpaintInput::kRenoised;
    at::Tensor start =
        c.nonzero_latent ? (c.wan22 ? latent22 : latent21) : at::zeros(c.wan22 ? shape22 : shape21);
    // Chained as a workflow chains two KSamplerAdvanced nodes: our first half's LATENT.
    if (!c.chained_from.empty()) start = ours_by_name.at(c.chained_from);
    auto ours = KSample(model, flow, start, options);
    ASSERT_TRUE(ours.ok()) << c.name << ": " << ours.status();
    const double error = RelativeL2(*ours, reference->at(c.name));
    EXPECT_LT(error, 1e-5) << c.name;
    if (error > worst) std::tie(worst, worst_case) = std::tie(error, c.name);
    ours_by_name[c.name] = *ours;
  }
  std::cout << cases.size() << " cases; the largest relative L2 to ComfyUI: " << worst << " ("
            << worst_case << ")\n";
}

TEST(ComfyUiParityTest, BrownianNoiseIsTorchsdesBitForBit) {
  // The SDE samplers' noise against ComfyUI's BrownianTreeNoiseSampler (torchsde's BrownianTree):
  // fresh seeds (above 2^32 too: two entropy words), karras-like and flow schedules, queries at
  // the schedule's pairs, at midpoints (dpmpp_sde's half steps) and repeated, in the samplers'
  // order and backwards.
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0, 1);
  std::string json = "{\"brownian\": [";
  struct Tree {
    std::string name;
    uint64_t seed;
    std::vector<double> sigmas;
    std::vector<std::pair<double, double>> queries;
  };
  std::vector<Tree> trees;
  for (int t = 0; t < 6; ++t) {
    Tree tree{absl::StrCat("tree", t), t % 2 ? rng() : rng() % (uint64_t{1} << 31), {}, {}};
    const int steps = 3 + static_cast<int>(rng() % 25);
    const double top = t < 3 ? 1.0 : 2 + 12 * unit(rng), bottom = 0.002 + 0.05 * unit(rng);
    for (int i = 0; i < steps; ++i) {  // karras-shaped, rho 7, in float32
      const double r = static_cast<double>(i) / (steps - 1);
      const double root =
          std::pow(top, 1 / 7.0) + r * (std::pow(bottom, 1 / 7.0) - std::pow(top, 1 / 7.0));
      tree.sigmas.push_back(static_cast<float>(std::pow(root, 7)));
    }
    tree.sigmas.push_back(0);
    for (int i = 0; i + 2 < static_cast<int>(tree.sigmas.size()); ++i) {
      const double a = tree.sigmas[i], b = tree.sigmas[i + 1];
      tree.queries.push_back({a, b});
      if (t % 3 == 1) tree.queries.push_back({a, static_cast<float>(std::sqrt(a * b))});
    }
    if (t % 3 == 2) std::reverse(tree.queries.begin(), tree.queries.end());
    tree.queries.push_back(tree.queries.front());
    absl::StrAppend(&json, t ? "," : "", "{\"name\":\"", tree.name, "\",\"seed\":", tree.seed,
                    ",\"shape\":[1,4,2,3,5],\"sigmas\":[");
    for (size_t i = 0; i < tree.sigmas.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "", Num(tree.sigmas[i]));
    }
    absl::StrAppend(&json, "],\"queries\":[");
    for (size_t i = 0; i < tree.queries.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "", "[", Num(tree.queries[i].first), ",",
                      Num(tree.queries[i].second), "]");
    }
    absl::StrAppend(&json, "]}");
    trees.push_back(std::move(tree));
  }
  absl::StrAppend(&json, "]}");
  testing_util::TempDir dir("comfyui_brownian");
  auto reference = RunComfyUi(dir, json, {});
  ASSERT_TRUE(reference.ok()) << reference.status();
  int compared = 0;
  for (const Tree& tree : trees) {
    NoiseSampler noise = BrownianNoiseSampler(at::zeros({1, 4, 2, 3, 5}), tree.seed, tree.sigmas);
    for (size_t i = 0; i < tree.queries.size(); ++i) {
      const at::Tensor ours = noise(tree.queries[i].first, tree.queries[i].second);
      const at::Tensor& theirs = reference->at(absl::StrCat(tree.name, "_", i));
      EXPECT_TRUE(at::equal(ours, theirs))
          << tree.name << " seed " << tree.seed << " query " << i << ": max difference "
          << (ours - theirs).abs().max().item<double>();
      ++compared;
    }
  }
  std::cout << compared << " Brownian increments compared with torchsde's\n";
}

TEST(ComfyUiParityTest, BetaScheduleAndLatentFormatsAreComfyUis) {
  std::string steps;
  for (int n = 1; n <= 50; ++n) absl::StrAppend(&steps, n > 1 ? "," : "", n);
  at::manual_seed(std::random_device{}());
  const at::Tensor x21 = at::randn({2, 16, 3, 5, 4}) * 3, x22 = at::randn({1, 48, 2, 3, 3}) * 3;
  testing_util::TempDir dir("comfyui_beta");
  auto reference = RunComfyUi(dir, absl::StrCat("{\"beta_indices\": [", steps, "]}"),
                              {{"format_wan21", x21}, {"format_wan22", x22}});
  ASSERT_TRUE(reference.ok()) << reference.status();
  // ComfyUI's model_sampling for Wan is a shift-5 flow table; the beta schedule picks its
  // entries by rounded index, so equal sigmas mean equal indices.
  const ModelSampling flow = ModelSampling::DiscreteFlow(5.0);
  for (int n = 1; n <= 50; ++n) {
    auto ours = ScheduleSigmas("beta", flow, n);
    ASSERT_TRUE(ours.ok());
    const at::Tensor theirs = reference->at(absl::StrCat("beta_", n));
    ASSERT_EQ(static_cast<int64_t>(ours->size()), theirs.numel()) << n << " steps";
    for (int64_t i = 0; i < theirs.numel(); ++i) {
      EXPECT_EQ(static_cast<float>((*ours)[i]), theirs[i].item<float>())
          << n << " steps, sigma " << i;
    }
  }
  // process_in / process_out: ComfyUI's bits, and inverse of each other.
  for (auto [name, format, x] : {std::tuple{"wan21", &models::Wan21LatentFormat(), x21},
                                 std::tuple{"wan22", &models::Wan22LatentFormat(), x22}}) {
    EXPECT_TRUE(at::equal(models::ProcessIn(*format, x), reference->at(absl::StrCat("in_", name))))
        << name;
    EXPECT_TRUE(
        at::equal(models::ProcessOut(*format, x), reference->at(absl::StrCat("out_", name))))
        << name;
    EXPECT_LT(RelativeL2(models::ProcessOut(*format, models::ProcessIn(*format, x)), x), 1e-6);
  }
}

}  // namespace
}  // namespace raylight::samplers
