// The fused DiT kernels (models/core/dit_fused.h, issue #27 item 1) against the unfused ATen
// chains they replace. On the CPU they decline (undefined: the caller runs the chain). On the GPU
// (label `gpu`), on Wan 14B's widths and random inputs fresh per run: the modulated LayerNorm
// (per-sample and per-token modulation; with the residual add before it in its pass, gated or
// not) and the RMSNorm + RoPE of q / k, each within bf16 rounding of the chain (relative L2 under
// 2e-3; most elements bit-equal, printed); the FFN's linear with its GELU in the GEMM's epilogue,
// likewise.
#include "models/core/dit_fused.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "models/core/rotary.h"
#include "tests/models/wan_test_util.h"

namespace raylight::models {
namespace {

using testing_util::RelativeL2;

// The chains as wan_model.cc runs them unfused.
at::Tensor ChainModulatedNorm(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
                              double eps) {
  const at::Tensor normed = at::layer_norm(x, {x.size(-1)}, {}, {}, eps);
  at::Tensor out = at::empty(normed.sizes(), normed.options().dtype(at::kBFloat16));
  at::addcmul_out(out, shift, normed, 1 + scale);
  return out;
}

at::Tensor ChainRmsNormRope(const at::Tensor& x, const at::Tensor& weight, double eps,
                            const at::Tensor& rotation, int64_t heads) {
  const at::Tensor normed = at::rms_norm(x, {x.size(-1)}, weight, eps);
  return ApplyRotary(normed.unflatten(-1, {heads, -1}), rotation);
}

// A rotation table of random angles, complex64 [tokens, pairs].
at::Tensor RandomRotation(int64_t tokens, int64_t pairs, at::Device device) {
  const at::Tensor angles =
      at::rand({tokens, pairs}, at::TensorOptions().dtype(at::kDouble)) * 2 * M_PI * 50;
  return RotationOf(angles).to(device);
}

#ifndef RAYLIGHT_TEST_GPU
TEST(DitFusedTest, DeclinesOnTheCpuSoTheChainRuns) {
  const at::Tensor x = at::randn({1, 6, 32});
  const at::Tensor mod = at::randn({1, 1, 32});
  EXPECT_FALSE(FusedModulatedLayerNorm(x, mod, mod, 1e-6, at::kBFloat16).defined());
  const at::Tensor before = x.clone();
  EXPECT_FALSE(
      FusedAddModulatedLayerNorm(x, x.to(at::kBFloat16), mod, mod, mod, 1e-6, at::kBFloat16)
          .defined());
  EXPECT_TRUE(at::equal(x, before));  // declined: x as it was
  const at::Tensor q = at::randn({1, 6, 32}).to(at::kBFloat16);
  EXPECT_FALSE(
      FusedRmsNormRope(q, at::ones({32}, q.options()), 1e-6, RandomRotation(6, 4, at::kCPU), 4)
          .defined());
  EXPECT_FALSE(
      FusedLinearGelu(q, at::randn({8, 32}).to(at::kBFloat16), at::randn({8}).to(at::kBFloat16))
          .defined());
  // The switch: on unless the environment says RAYLIGHT_FUSED_KERNELS=0, and settable.
  const char* env = std::getenv("RAYLIGHT_FUSED_KERNELS");
  const bool was = FusedKernels();
  EXPECT_EQ(was, env == nullptr || std::string(env) != "0");
  SetFusedKernels(!was);
  EXPECT_EQ(FusedKernels(), !was);
  SetFusedKernels(was);
}

#else
// The share of elements whose bits differ, for the printout.
double DifferingShare(const at::Tensor& a, const at::Tensor& b) {
  return (a != b).to(at::kDouble).mean().item<double>();
}

TEST(DitFusedGpuTest, ModulatedLayerNormWithinBf16RoundingOfTheChain) {
  const at::Device cuda("cuda");
  for (const bool per_token : {false, true}) {
    const int64_t batch = 2, tokens = 3000, dim = 5120;
    const at::Tensor x = at::randn({batch, tokens, dim}, cuda) * 3 + 0.5;
    const int64_t mod_rows = per_token ? tokens : 1;
    const at::Tensor shift = at::randn({batch, mod_rows, dim}, cuda) * 0.1;
    const at::Tensor scale = at::randn({batch, mod_rows, dim}, cuda) * 0.1;
    const at::Tensor fused = FusedModulatedLayerNorm(x, shift, scale, 1e-6, at::kBFloat16);
    ASSERT_TRUE(fused.defined());
    ASSERT_EQ(fused.scalar_type(), at::kBFloat16);
    const at::Tensor chain = ChainModulatedNorm(x, shift, scale, 1e-6);
    const double error = RelativeL2(fused.cpu(), chain.cpu());
    std::printf("modulated layer norm (%s): relative L2 %.3g, %.4f of elements differ\n",
                per_token ? "per token" : "per sample", error, DifferingShare(fused, chain));
    EXPECT_LT(error, 2e-3);
  }
}

// The residual add in the norm's pass: x as the chain's addcmul_ / add_ leaves it (within one
// fp32 rounding: the kernel's add is a fused multiply-add), the norm within bf16 rounding.
TEST(DitFusedGpuTest, ResidualAddInTheModulatedNormsPassWithinRoundingOfTheChain) {
  const at::Device cuda("cuda");
  const int64_t batch = 2, tokens = 3000, dim = 5120;
  for (const char* gating : {"none", "per sample", "per token"}) {
    const std::string kind(gating);
    const at::Tensor x = at::randn({batch, tokens, dim}, cuda) * 3 + 0.5;
    const at::Tensor branch = at::randn({batch, tokens, dim}, cuda).to(at::kBFloat16);
    at::Tensor gate;
    if (kind != "none") gate = at::randn({batch, kind == "per token" ? tokens : 1, dim}, cuda);
    const at::Tensor shift = at::randn({batch, 1, dim}, cuda) * 0.1;
    const at::Tensor scale = at::randn({batch, 1, dim}, cuda) * 0.1;
    at::Tensor chain_x = x.clone();
    if (gate.defined()) {
      chain_x.addcmul_(branch, gate);
    } else {
      chain_x.add_(branch);
    }
    const at::Tensor chain = ChainModulatedNorm(chain_x, shift, scale, 1e-6);
    at::Tensor fused_x = x.clone();
    const at::Tensor fused =
        FusedAddModulatedLayerNorm(fused_x, branch, gate, shift, scale, 1e-6, at::kBFloat16);
    ASSERT_TRUE(fused.defined());
    const double x_apart = (fused_x - chain_x).abs().max().item<double>();
    const double error = RelativeL2(fused.cpu(), chain.cpu());
    std::printf(
        "residual add + modulated norm (gate %s): x at most %.3g apart; norm relative L2 "
        "%.3g, %.4f of elements differ\n",
        gating, x_apart, error, DifferingShare(fused, chain));
    EXPECT_LE(x_apart, 1e-5 * chain_x.abs().max().item<double>());
    EXPECT_LT(error, 2e-3);
  }
}

TEST(DitFusedGpuTest, RmsNormRopeWithinBf16RoundingOfTheChain) {
  const at::Device cuda("cuda");
  const int64_t batch = 2, tokens = 3000, heads = 40, head_dim = 128;
  const at::Tensor x = (at::randn({batch, tokens, heads * head_dim}, cuda) * 2).to(at::kBFloat16);
  const at::Tensor weight = (1 + 0.1 * at::randn({heads * head_dim}, cuda)).to(at::kBFloat16);
  const at::Tensor rotation = RandomRotation(tokens, head_dim / 2, cuda);
  const at::Tensor fused = FusedRmsNormRope(x, weight, 1e-6, rotation, heads);
  ASSERT_TRUE(fused.defined());
  ASSERT_EQ(fused.sizes(), at::IntArrayRef({batch, tokens, heads, head_dim}));
  const at::Tensor chain = ChainRmsNormRope(x, weight, 1e-6, rotation, heads);
  const double error = RelativeL2(fused.cpu(), chain.cpu());
  std::printf("rms norm + rope: relative L2 %.3g, %.4f of elements differ\n", error,
              DifferingShare(fused, chain));
  EXPECT_LT(error, 2e-3);
  // Shapes it does not take are declined (the chain runs).
  EXPECT_FALSE(FusedRmsNormRope(x.to(at::kFloat), weight, 1e-6, rotation, heads).defined());
  EXPECT_FALSE(FusedRmsNormRope(x, weight, 1e-6, rotation.narrow(0, 0, 10), heads).defined());
}

TEST(DitFusedGpuTest, LinearGeluEpilogueNoFartherFromFp32ThanTheChain) {
  const at::Device cuda("cuda");
  // Wan 14B's FFN widths (5120 -> 13824) on 3000 tokens of two samples.
  const int64_t batch = 2, tokens = 3000, dim = 5120, ffn = 13824;
  const at::TensorOptions bf16 = at::TensorOptions().device(cuda).dtype(at::kBFloat16);
  const at::Tensor x = at::randn({batch, tokens, dim}, bf16);
  const at::Tensor weight = at::randn({ffn, dim}, bf16) * (1.0 / std::sqrt(dim));
  const at::Tensor bias = at::randn({ffn}, bf16) * 0.1;
  const at::Tensor fused = FusedLinearGelu(x, weight, bias);
  ASSERT_TRUE(fused.defined());
  ASSERT_EQ(fused.sizes(), at::IntArrayRef({batch, tokens, ffn}));
  // The chain rounds the linear's output to bf16 before the GELU and again after it; the epilogue
  // applies the GELU to the fp32 accumulator and rounds once. Where the GELU is steep relative to
  // its value (negative inputs) the chain's first rounding is amplified, so the two differ by more
  // than one rounding (relative L2 about 3e-3): the bound is against fp32, where the epilogue must
  // be at least as near as the chain and within bf16 rounding.
  const at::Tensor chain = at::gelu(at::linear(x, weight, bias), "tanh");
  const at::Tensor fp32 =
      at::gelu(at::linear(x.to(at::kFloat), weight.to(at::kFloat), bias.to(at::kFloat)), "tanh");
  const double fused_error = RelativeL2(fused.cpu(), fp32.cpu());
  const double chain_error = RelativeL2(chain.cpu(), fp32.cpu());
  std::printf(
      "linear + gelu epilogue: relative L2 from fp32 %.3g (chain %.3g), %.4f of elements differ "
      "from the chain\n",
      fused_error, chain_error, DifferingShare(fused, chain));
  EXPECT_LT(fused_error, 2e-3);
  EXPECT_LE(fused_error, chain_error * 1.05);
  // fp8 weights and missing biases are declined (the chain runs).
  EXPECT_FALSE(FusedLinearGelu(x, weight.to(at::kFloat8_e4m3fn), bias).defined());
  EXPECT_FALSE(FusedLinearGelu(x, weight, at::Tensor()).defined());
}
#endif

}  // namespace
}  // namespace raylight::models
