// fp8 compute's linear layer (models/core/fp8_linear.h) against the fp32 product of the
// unquantised operands, on fresh random operands: the per-row weight scales and per-token
// activation scales, the error bound the header states, and tokens whose magnitudes differ by
// orders (what per-token scaling is for). On the GPU (label `gpu`) the `_scaled_mm` path against
// the same quantised values multiplied in fp32, and against bf16.
#include "models/core/fp8_linear.h"

#include <gtest/gtest.h>

#include "tests/models/wan_test_util.h"

namespace raylight::models {
namespace {

using testing_util::RelativeL2;

// The header's per-layer bound on Gaussian operands: both operands rounded to 3 mantissa bits.
constexpr double kLayerBound = 0.08;

#ifndef RAYLIGHT_TEST_GPU
TEST(Fp8LinearTest, RowsQuantiseToTheirOwnMaximum) {
  // Rows of very different magnitudes, one all zero.
  at::Tensor weight = at::randn({48, 64}) * at::logspace(-3, 3, 48).unsqueeze(1);
  weight[5].zero_();
  const Fp8Rows rows = QuantizeFp8Rows(weight);
  ASSERT_EQ(rows.values.scalar_type(), at::kFloat8_e4m3fn);
  ASSERT_EQ(rows.scale.sizes(), at::IntArrayRef({48}));
  const at::Tensor values = rows.values.to(at::kFloat);
  // Every nonzero row's largest value lands on e4m3's largest, 448.
  for (int64_t r = 0; r < 48; ++r) {
    if (r == 5) continue;
    EXPECT_EQ(values[r].abs().max().item<float>(), kFp8E4m3Max) << "row " << r;
  }
  EXPECT_EQ(values[5].abs().max().item<float>(), 0);
  EXPECT_TRUE(at::isfinite(rows.scale).all().item<bool>());
  // Each value within half an e4m3 step (2^-4 relative) of itself, or of a subnormal step.
  const at::Tensor back = values * rows.scale.unsqueeze(1);
  const at::Tensor step =
      at::maximum(weight.abs() * std::pow(2.0, -4), rows.scale.unsqueeze(1) * std::pow(2.0, -9));
  EXPECT_TRUE(((back - weight).abs() <= step * 1.0001).all().item<bool>());
  for (int64_t r = 0; r < 48; ++r) {
    if (r == 5) continue;
    EXPECT_LT(RelativeL2(back[r], weight[r]), 0.04) << "row " << r;
  }
}

TEST(Fp8LinearTest, ProductStaysWithinTheStatedBoundForEveryToken) {
  const int64_t tokens = 96, in = 256, out = 160;
  // Tokens from 1e-3 to 1e3 in magnitude: one scale for the tensor would flush the small ones.
  const at::Tensor x =
      at::randn({2, tokens / 2, in}) * at::logspace(-3, 3, tokens).reshape({2, tokens / 2, 1});
  const at::Tensor weight = at::randn({out, in}) / std::sqrt(double(in));
  const at::Tensor bias = at::randn({out});
  const Fp8Rows w = QuantizeFp8Rows(weight);
  const at::Tensor y = Fp8Linear(x, w.values, w.scale, bias);
  const at::Tensor expected = at::linear(x, weight, bias);
  ASSERT_EQ(y.sizes(), expected.sizes());
  ASSERT_EQ(y.scalar_type(), at::kFloat);
  // Per token, without the bias (which is exact and would hide the small tokens' error).
  const at::Tensor got = (y - bias).reshape({tokens, out});
  const at::Tensor want = (expected - bias).reshape({tokens, out});
  double worst = 0;
  for (int64_t t = 0; t < tokens; ++t) worst = std::max(worst, RelativeL2(got[t], want[t]));
  std::printf("fp8 linear, %ld tokens over six orders of magnitude: worst token relative L2 %.4g\n",
              static_cast<long>(tokens), worst);
  EXPECT_LT(worst, kLayerBound);
  EXPECT_GT(worst, 1e-3);  // it really is quantised
  // The quantised input per token: x ~ values * scale, the largest value of each token at 448.
  const Fp8Rows q = QuantizeFp8Tokens(x);
  ASSERT_EQ(q.scale.sizes(), at::IntArrayRef({tokens, 1}));
  EXPECT_TRUE(at::allclose(q.values.to(at::kFloat).abs().amax(1), at::full({tokens}, kFp8E4m3Max)));
}

TEST(Fp8LinearTest, WeightsOfOtherShapesAreNotFp8Linears) {
  EXPECT_TRUE(IsFp8Linear("self_attn.q.weight", {1536, 1536}));
  EXPECT_FALSE(IsFp8Linear("self_attn.q.bias", {1536}));
  EXPECT_FALSE(IsFp8Linear("norm3.weight", {1536}));
  EXPECT_FALSE(IsFp8Linear("modulation", {1, 6, 1536}));
  EXPECT_FALSE(IsFp8Linear("ffn.0.weight", {8960, 1530}));  // not a multiple of 16
  EXPECT_EQ(Fp8ScaleName("ffn.0.weight"), "ffn.0.weight_scale");
}

// A LinearInput read by several layers: each fp8 layer gives what Fp8Linear gives on the tensor
// itself (the tokens quantised once), a micro-batch's Narrow the same rows as the whole's, and the
// FFN's GELU input the layer of gelu_tanh(x), for fp8 and for plain weights.
TEST(Fp8LinearTest, ALinearInputQuantisedOnceGivesEachLayersOwnProduct) {
  const int64_t samples = 2, tokens = 24, in = 64;
  const at::Tensor x = at::randn({samples, tokens, in}) * 3;
  WeightSet w;
  for (const char* name : {"q", "k", "plain"}) {
    const at::Tensor weight = at::randn({32, in}) / std::sqrt(double(in));
    w.Set(std::string(name) + ".bias", at::randn({32}));
    if (std::string(name) == "plain") {
      w.Set("plain.weight", weight);
      continue;
    }
    const Fp8Rows rows = QuantizeFp8Rows(weight);
    w.Set(std::string(name) + ".weight", rows.values);
    w.Set(Fp8ScaleName(std::string(name) + ".weight"), rows.scale);
  }
  const LinearInput input(x);
  for (const char* name : {"q", "k"}) {
    const std::string n(name);
    EXPECT_TRUE(at::equal(
        ModuleLinear(input, w, n),
        Fp8Linear(x, w.Get(n + ".weight"), w.Get(Fp8ScaleName(n + ".weight")), w.Get(n + ".bias"))))
        << name;
  }
  // The second sample alone, through the whole's quantised tokens and through its own.
  const at::Tensor second = ModuleLinear(input.Narrow(1, 1), w, "q");
  EXPECT_TRUE(at::equal(second, ModuleLinear(LinearInput(x.narrow(0, 1, 1)), w, "q")));
  EXPECT_EQ(second.sizes(), at::IntArrayRef({1, tokens, 32}));

  const LinearInput hidden(x, Fp8QuantActivation::kGeluTanh);
  const at::Tensor gelu = at::gelu(x, "tanh");
  EXPECT_TRUE(
      at::equal(ModuleLinear(hidden, w, "q"),
                Fp8Linear(gelu, w.Get("q.weight"), w.Get("q.weight_scale"), w.Get("q.bias"))));
  EXPECT_TRUE(at::allclose(ModuleLinear(hidden, w, "plain"),
                           at::linear(gelu, w.Get("plain.weight"), w.Get("plain.bias"))));
  // The GELU really is applied: without it the product differs.
  EXPECT_GT(RelativeL2(ModuleLinear(hidden, w, "plain"), ModuleLinear(x, w, "plain")), 0.1);
}

// An input that arrives as e4m3 (fp8 attention's output): fp8 layers read its bytes and row scales
// as they are, a bf16 layer reads what its dequantisation gives, made once.
TEST(Fp8LinearTest, AnE4m3InputIsReadAsItIs) {
  const int64_t samples = 2, tokens = 24, in = 64;
  const at::Tensor x = at::randn({samples, tokens, in}) * 3;
  WeightSet w;
  const Fp8Rows rows = QuantizeFp8Rows(at::randn({32, in}) / std::sqrt(double(in)));
  w.Set("q.weight", rows.values);
  w.Set(Fp8ScaleName("q.weight"), rows.scale);
  w.Set("plain.weight", at::randn({32, in}));
  // The scales of the tokens stand for any scale the producer chose: here twice x's own.
  const Fp8Rows own = QuantizeFp8Tokens(x);
  const Fp8Rows e4m3{own.values, own.scale * 2};
  const at::Tensor dequantised = (e4m3.values.to(at::kFloat) * e4m3.scale).view(x.sizes());
  int made = 0;
  const LinearInput input(e4m3, x.sizes().vec(), at::kFloat, [&] {
    ++made;
    return dequantised;
  });
  EXPECT_EQ(input.sizes(), x.sizes());
  EXPECT_TRUE(at::allclose(ModuleLinear(input, w, "q"), ModuleLinear(x, w, "q") * 2));
  EXPECT_EQ(made, 0);  // the fp8 layer never dequantised
  EXPECT_TRUE(
      at::equal(ModuleLinear(input, w, "plain"), at::linear(dequantised, w.Get("plain.weight"))));
  EXPECT_TRUE(
      at::equal(ModuleLinear(input, w, "plain"), at::linear(dequantised, w.Get("plain.weight"))));
  EXPECT_EQ(made, 1);
  // Tokens that do not tile the declared shape are refused.
  EXPECT_THROW(LinearInput(e4m3, {samples, tokens + 1, in}, at::kFloat, [&] { return x; }),
               c10::Error);
}

#else
TEST(Fp8LinearGpuTest, ScaledMmEqualsTheQuantisedProductAndStaysNearBf16) {
  const at::Device cuda("cuda");
  const int64_t tokens = 4096, in = 5120, out = 13824;  // Wan 14B's FFN in
  const at::Tensor x = at::randn({1, tokens, in}, cuda).to(at::kBFloat16);
  const at::Tensor weight = (at::randn({out, in}, cuda) / std::sqrt(double(in))).to(at::kBFloat16);
  const at::Tensor bias = at::randn({out}, cuda).to(at::kBFloat16);
  const Fp8Rows w = QuantizeFp8Rows(weight);
  const at::Tensor y = Fp8Linear(x, w.values, w.scale, bias);
  ASSERT_EQ(y.scalar_type(), at::kBFloat16);
  // The CPU path multiplies the same quantised values in fp32.
  const at::Tensor emulated =
      Fp8Linear(x.cpu().to(at::kFloat), w.values.cpu(), w.scale.cpu(), bias.cpu());
  const double vs_emulated = RelativeL2(y.cpu().to(at::kFloat), emulated);
  const double vs_bf16 =
      RelativeL2(y.cpu().to(at::kFloat), at::linear(x, weight, bias).cpu().to(at::kFloat));
  std::printf(
      "fp8 GEMM %ldx%ldx%ld: relative L2 %.3g against the same fp8 values in fp32, "
      "%.3g against bf16\n",
      static_cast<long>(tokens), static_cast<long>(in), static_cast<long>(out), vs_emulated,
      vs_bf16);
  EXPECT_LT(vs_emulated, 1e-2);  // bf16 output rounding and summation order
  EXPECT_LT(vs_bf16, kLayerBound);
}

// The fused kernel (fp8_quant_cuda.h) against libtorch's five ops, bf16 and fp32 inputs, widths
// that are and are not multiples of the block's 256 threads, tokens from 1e-3 to 1e3: the same
// bytes and scales.
TEST(Fp8LinearGpuTest, FusedQuantisationGivesTheUnfusedBits) {
  const at::Device cuda("cuda");
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    for (const int64_t width : {5120, 1536, 13824, 100}) {
      const int64_t tokens = 777;
      const at::Tensor x =
          (at::randn({tokens, width}, cuda) * at::logspace(-3, 3, tokens, 10, cuda).unsqueeze(1))
              .to(dtype);
      const Fp8Rows fused = QuantizeFp8Tokens(x);
      const Fp8Rows unfused = QuantizeFp8Tokens(x, /*fused=*/false);
      EXPECT_TRUE(at::equal(fused.scale, unfused.scale)) << dtype << " " << width;
      EXPECT_TRUE(at::equal(fused.values.view(at::kByte), unfused.values.view(at::kByte)))
          << dtype << " " << width;
    }
  }
}

// The kernel's GELU (the FFN's hidden activation quantised in the same pass) against libtorch's
// gelu then the unfused quantisation. The kernel transcribes libtorch's arithmetic, so the bits
// should agree; a contraction the compiler makes differently could move a value by one bf16 ulp,
// and so a byte by one e4m3 step where it sits on a rounding boundary: allowed for one value in
// ten thousand, each at most one step, the scales within a bf16 ulp. The count is printed.
TEST(Fp8LinearGpuTest, GeluInTheQuantisationGivesTheUnfusedOpsValues) {
  const at::Device cuda("cuda");
  for (const at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
    for (const int64_t width : {13824, 8960, 100}) {
      const int64_t tokens = 513;
      const at::Tensor x =
          (at::randn({tokens, width}, cuda) * at::logspace(-2, 1, tokens, 10, cuda).unsqueeze(1))
              .to(dtype);
      const Fp8Rows fused = QuantizeFp8Tokens(x, true, Fp8QuantActivation::kGeluTanh);
      const Fp8Rows unfused = QuantizeFp8Tokens(x, false, Fp8QuantActivation::kGeluTanh);
      const at::Tensor a = fused.values.to(at::kFloat);
      const at::Tensor b = unfused.values.to(at::kFloat);
      const int64_t differ = (a != b).sum().item<int64_t>();
      // One e4m3 step at a value: 2^-3 of its power of two, 2^-9 below the normals.
      const at::Tensor step = at::maximum(b.abs() * std::pow(2.0, -3), at::full_like(b, 1.0 / 512));
      std::printf("gelu + e4m3, %s width %ld: %ld of %ld bytes differ from the unfused ops\n",
                  c10::toString(dtype), static_cast<long>(width), static_cast<long>(differ),
                  static_cast<long>(a.numel()));
      EXPECT_LE(differ, a.numel() / 10000) << dtype << " " << width;
      EXPECT_TRUE(((a - b).abs() <= step * 1.0001).all().item<bool>()) << dtype << " " << width;
      EXPECT_TRUE(at::allclose(fused.scale, unfused.scale, /*rtol=*/1.0 / 128, /*atol=*/0))
          << dtype << " " << width;
      // The activation really is in: without it the bytes differ.
      EXPECT_FALSE(
          at::equal(fused.values.view(at::kByte), QuantizeFp8Tokens(x).values.view(at::kByte)));
    }
  }
}
#endif

}  // namespace
}  // namespace raylight::models
