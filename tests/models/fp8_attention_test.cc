// fp8 attention (models/core/fp8_attention.h, issue #27 item 2). On the CPU it refuses by name
// (no silent bf16). On the GPU (label `gpu`; Hopper or newer, else skipped with the reason), on
// random inputs fresh per run: the quantisation kernels' bytes and descale against libtorch's
// cast of the same scaled values (the keys less their mean too, the same bytes on every run); the
// attention against fp32 attention on its own e4m3 inputs
// (what is left is the kernel's rounding of the probabilities and of the output: under 2^-4
// relative L2), at Wan's head size over lengths that do and do not divide the kernels' tiles,
// self-attention and a short key set, with its distance from fp32 on the bf16 inputs and cuDNN's
// bf16 error beside it; keys with a shared offset (taken out before the rounding); the e4m3
// output read by an fp8 linear as it is; and the job switch through Attention
// (ParallelContext::fp8_attention), which cross-attention does not take.
#include "models/core/fp8_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>

#include "models/core/attention.h"
#include "models/core/fp8_linear.h"
#include "models/core/sequence_parallel.h"
#include "tests/models/wan_test_util.h"

#ifdef RAYLIGHT_TEST_GPU
#include <ATen/cuda/CUDAContext.h>

#include "models/core/fp8_attention_cuda.h"
#endif

namespace raylight::models {
namespace {

using testing_util::RelativeL2;

#ifndef RAYLIGHT_TEST_GPU
TEST(Fp8AttentionTest, RefusesByNameOnTheCpu) {
  std::string why;
  EXPECT_FALSE(Fp8AttentionRuns(at::kCPU, &why));
  EXPECT_FALSE(why.empty());
  const at::Tensor q = at::randn({1, 8, 2, 16}).to(at::kBFloat16);
  try {
    Fp8Attention(q, q, q);
    ADD_FAILURE() << "fp8 attention ran on the CPU";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what_without_backtrace()).find("attention fp8"), std::string::npos)
        << error.what_without_backtrace();
  }
  // The job switch reaches the kernel: a self-attention asked for fp8 refuses the same way, and
  // a cross-attention (which the switch leaves in bf16) runs.
  ParallelContext fp8;
  fp8.fp8_attention = true;
  EXPECT_THROW(Attention(q, q, q, fp8, AttentionKind::kSelf), c10::Error);
  const at::Tensor cross = Attention(q, q, q, fp8, AttentionKind::kCross);
  EXPECT_TRUE(at::equal(cross, Attention(q, q, q, ParallelContext{}, AttentionKind::kSelf)));
}
#else

// Skips the test where the GPU cannot run it, saying why.
#define SKIP_WITHOUT_FP8_ATTENTION()                                            \
  do {                                                                          \
    std::string why;                                                            \
    if (!Fp8AttentionRuns(at::Device(at::kCUDA, 0), &why)) GTEST_SKIP() << why; \
  } while (0)

at::Tensor Fp32Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  // The math kernel in fp32: [B, L, H, D] -> [B, H, L, D] and back.
  const at::Tensor out = std::get<0>(at::_scaled_dot_product_attention_math(
      q.to(at::kFloat).transpose(1, 2), k.to(at::kFloat).transpose(1, 2),
      v.to(at::kFloat).transpose(1, 2)));
  return out.transpose(1, 2);
}

TEST(Fp8AttentionGpuTest, QuantisesAWholeTensorAsLibtorchCastsItsScaledValues) {
  SKIP_WITHOUT_FP8_ATTENTION();
  const at::TensorOptions bf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  for (const int64_t n : {int64_t{5120} * 333, int64_t{1000003}}) {  // whole vectors, and a tail
    const at::Tensor x = (at::randn({n}, bf16) * 3).contiguous();
    at::Tensor out = at::empty({n}, bf16.dtype(at::kFloat8_e4m3fn));
    at::Tensor f = at::empty({3}, bf16.dtype(at::kFloat));
    const auto stream = at::cuda::getCurrentCUDAStream();
    ASSERT_EQ(LaunchQuantizeTensorFp8(x.data_ptr(), n, f.data_ptr<float>(), f.data_ptr<float>() + 1,
                                      static_cast<uint8_t*>(out.data_ptr()), stream),
              0);
    const float amax = x.abs().max().item<float>();
    const at::Tensor factors = f.cpu();
    EXPECT_EQ(factors[1].item<float>(), amax / 448.0f);
    EXPECT_EQ(factors[2].item<float>(), 448.0f / amax);
    const at::Tensor want = (x.to(at::kFloat) * (448.0f / amax)).to(at::kFloat8_e4m3fn);
    EXPECT_TRUE(at::equal(out.view(at::kByte), want.view(at::kByte))) << n << " values";
    // And back: the bytes times the descale, rounded once to bf16.
    at::Tensor back = at::empty({n}, bf16);
    ASSERT_EQ(LaunchDequantizeFp8(static_cast<const uint8_t*>(out.data_ptr()), n,
                                  f.data_ptr<float>() + 1, back.data_ptr(), stream),
              0);
    EXPECT_TRUE(at::equal(back, (out.to(at::kFloat) * (amax / 448.0f)).to(at::kBFloat16)));
  }
}

// k less its mean over the keys in fp32, and the bound the keys' kernel scales by:
// amax|k| + max|mean|.
struct CenteredKeys {
  at::Tensor values;  // fp32
  float bound;
};
CenteredKeys Centered(const at::Tensor& k) {
  const at::Tensor k32 = k.to(at::kFloat);
  const at::Tensor mean = k32.mean({1}, /*keepdim=*/true);
  return {k32 - mean, k32.abs().max().item<float>() + mean.abs().max().item<float>()};
}

TEST(Fp8AttentionGpuTest, QuantisesKeysLessTheirMeanInOnePass) {
  SKIP_WITHOUT_FP8_ATTENTION();
  const at::TensorOptions bf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  // Two samples of lengths that do and do not fill the kernel's 256-row chunks, widths that do
  // and do not fill its 1024-column tiles; keys with a shared offset in a few channels.
  for (const auto& [rows, heads] : {std::pair<int64_t, int64_t>{3003, 5}, {4096, 12}}) {
    const int64_t width = heads * 128;
    at::Tensor k = at::randn({2, rows, heads, 128}, bf16) * 1.5;
    k.narrow(3, 0, 4).add_(6.0);
    at::Tensor out = at::empty(k.sizes(), bf16.dtype(at::kFloat8_e4m3fn));
    at::Tensor scratch = at::empty({KeysFp8ScratchFloats(2, rows, width)}, bf16.dtype(at::kFloat));
    at::Tensor f = at::empty({2}, bf16.dtype(at::kFloat));
    ASSERT_EQ(LaunchQuantizeKeysFp8(k.data_ptr(), 2, rows, width, scratch.data_ptr<float>(),
                                    f.data_ptr<float>(), static_cast<uint8_t*>(out.data_ptr()),
                                    at::cuda::getCurrentCUDAStream()),
              0);
    const CenteredKeys want = Centered(k);
    const at::Tensor factors = f.cpu();
    EXPECT_NEAR(factors[0].item<float>(), want.bound / 448.0f, 1e-6 * want.bound / 448.0f);
    EXPECT_NEAR(factors[1].item<float>(), 448.0f / want.bound, 1e-6 * 448.0f / want.bound);
    // The kernel's means sum in another order than libtorch's: a value on a rounding boundary
    // may land one e4m3 step away, nothing further.
    const float scale = factors[1].item<float>();
    const at::Tensor got = out.to(at::kFloat);
    const at::Tensor expected = (want.values * scale).to(at::kFloat8_e4m3fn).to(at::kFloat);
    const double differing = got.ne(expected).to(at::kDouble).mean().item<double>();
    const double worst =
        ((got - expected).abs() / expected.abs().clamp_min(1.0 / 64)).max().item<double>();
    std::printf("keys %ld x %ld: %.3g of the bytes differ from libtorch's, by at most %.3g\n",
                static_cast<long>(rows), static_cast<long>(width), differing, worst);
    EXPECT_LT(differing, 1e-3);
    EXPECT_LE(worst, 0.125 + 1e-6);
    // And the same bytes on a second run (the means add their chunks in a fixed order).
    at::Tensor again = at::empty_like(out);
    ASSERT_EQ(LaunchQuantizeKeysFp8(k.data_ptr(), 2, rows, width, scratch.data_ptr<float>(),
                                    f.data_ptr<float>(), static_cast<uint8_t*>(again.data_ptr()),
                                    at::cuda::getCurrentCUDAStream()),
              0);
    EXPECT_TRUE(at::equal(again.view(at::kByte), out.view(at::kByte)));
  }
}

// x as the kernel's inputs hold it: rounded to e4m3 with one scale for the tensor (`bound`, by
// default its largest magnitude, to 448), back in fp32.
at::Tensor E4m3Rounded(const at::Tensor& x, float bound = 0) {
  if (bound == 0) bound = x.abs().max().item<float>();
  return (x.to(at::kFloat) * (448.0f / bound)).to(at::kFloat8_e4m3fn).to(at::kFloat) *
         (bound / 448.0f);
}

TEST(Fp8AttentionGpuTest, WithinItsTwoE4m3RoundingsOfFp32AttentionOnItsInputs) {
  SKIP_WITHOUT_FP8_ATTENTION();
  const at::TensorOptions bf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  struct Case {
    int64_t batch, lq, lk, heads;
  };
  // Wan's head size (128); tile-multiple and odd lengths; a batch of two (cond and uncond);
  // a short key set (512 text tokens).
  for (const Case c : {Case{1, 4096, 4096, 12}, Case{2, 3003, 3003, 5}, Case{1, 1037, 512, 40}}) {
    // Scores of standard deviation 2.25 (q and k of 1.5 each).
    const at::Tensor q = at::randn({c.batch, c.lq, c.heads, 128}, bf16) * 1.5;
    const at::Tensor k = at::randn({c.batch, c.lk, c.heads, 128}, bf16) * 1.5;
    const at::Tensor v = at::randn({c.batch, c.lk, c.heads, 128}, bf16);
    const at::Tensor fp8 = Fp8Attention(q, k, v);
    ASSERT_EQ(fp8.sizes(), q.sizes());
    ASSERT_EQ(fp8.scalar_type(), at::kBFloat16);
    // The kernel's inputs are q, k less its mean, and v, each rounded to e4m3: on those, what is
    // left is its own two roundings, of the probabilities and of the output, each at most 2^-4
    // relative.
    const CenteredKeys keys = Centered(k);
    const at::Tensor on_inputs =
        Fp32Attention(E4m3Rounded(q), E4m3Rounded(keys.values, keys.bound), E4m3Rounded(v));
    const double kernel_error = RelativeL2(fp8.to(at::kFloat), on_inputs);
    const at::Tensor fp32 = Fp32Attention(q, k, v);
    const double fp8_error = RelativeL2(fp8.to(at::kFloat), fp32);
    const double bf16_error = RelativeL2(LocalAttention(q, k, v).to(at::kFloat), fp32);
    std::printf(
        "B %ld, Lq %ld, Lk %ld, H %ld: relative L2: from fp32 on its e4m3 inputs %.4g; from fp32 "
        "%.4g (bf16 %.4g)\n",
        static_cast<long>(c.batch), static_cast<long>(c.lq), static_cast<long>(c.lk),
        static_cast<long>(c.heads), kernel_error, fp8_error, bf16_error);
    EXPECT_LT(kernel_error, 0.0625);
    EXPECT_GT(fp8_error, bf16_error);  // it really ran in fp8
  }
}

// Keys with a large shared part in a few channels (what SageAttention found in trained models'
// keys): taken out before the rounding, so the error stays what it is without them.
TEST(Fp8AttentionGpuTest, KeysSharedOffsetDoesNotCostAccuracy) {
  SKIP_WITHOUT_FP8_ATTENTION();
  const at::TensorOptions bf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  const at::Tensor q = at::randn({1, 2048, 8, 128}, bf16);
  const at::Tensor k = at::randn({1, 2048, 8, 128}, bf16);
  const at::Tensor v = at::randn({1, 2048, 8, 128}, bf16);
  at::Tensor offset = at::zeros({1, 1, 8, 128}, bf16);
  offset.narrow(3, 0, 8).fill_(24.0);  // 8 channels of every head
  const at::Tensor shifted = k + offset;
  const double plain = RelativeL2(Fp8Attention(q, k, v).to(at::kFloat), Fp32Attention(q, k, v));
  const double with_offset =
      RelativeL2(Fp8Attention(q, shifted, v).to(at::kFloat), Fp32Attention(q, shifted, v));
  std::printf("relative L2 from fp32: keys as drawn %.4g, with a shared offset %.4g\n", plain,
              with_offset);
  EXPECT_LT(with_offset, 1.2 * plain);
}

// The e4m3 output feeds an fp8 linear as it is (v's descale on every row): the product of those
// bytes, within the GEMM's fast accumulation; the bf16 route gets Fp8Attention's output.
TEST(Fp8AttentionGpuTest, TheE4m3OutputFeedsAnFp8LinearAsItIs) {
  SKIP_WITHOUT_FP8_ATTENTION();
  const at::TensorOptions bf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  const at::Tensor q = at::randn({2, 1037, 4, 128}, bf16);
  const at::Tensor k = at::randn({2, 1037, 4, 128}, bf16), v = at::randn({2, 1037, 4, 128}, bf16);
  const Fp8Rows weight = QuantizeFp8Rows(at::randn({384, 512}, bf16) / std::sqrt(512.0));
  const at::Tensor bias = at::randn({384}, bf16);
  ParallelContext fp8;
  fp8.fp8_attention = true;
  SequenceAttention attention(fp8);
  attention.SetQuery(q);
  attention.SetKey(k);
  attention.SetValue(v);
  const LinearInput input = attention.OutputAsLinearInput();
  ASSERT_EQ(input.sizes(), at::IntArrayRef({2, 1037, 512}));
  const at::Tensor got = Fp8Linear(input, weight.values, weight.scale, bias);
  const Fp8Rows& tokens = input.Tokens();
  const at::Tensor exact =
      at::linear(tokens.values.to(at::kFloat) * tokens.scale,
                 weight.values.to(at::kFloat) * weight.scale.unsqueeze(1), bias.to(at::kFloat))
          .view({2, 1037, 384});
  const double error = RelativeL2(got.to(at::kFloat), exact);
  // Against the route through bf16: the output dequantised, then quantised per token again.
  const at::Tensor bf16_route =
      Fp8Linear(attention.Output().flatten(-2), weight.values, weight.scale, bias);
  const double routes_apart = RelativeL2(got.to(at::kFloat), bf16_route.to(at::kFloat));
  std::printf(
      "e4m3 output into the fp8 linear: %.3g from the exact product of its bytes; %.3g "
      "from the route through bf16\n",
      error, routes_apart);
  EXPECT_LT(error, 0.01);           // fast accumulation and the bf16 result: ~0.003 (fp8_linear.h)
  EXPECT_LT(routes_apart, 0.0625);  // the route through bf16 rounds to e4m3 a second time
  EXPECT_TRUE(at::equal(attention.Output(), Fp8Attention(q, k, v)));
  EXPECT_TRUE(at::equal(input.Activated(), attention.Output().flatten(-2)));
}

TEST(Fp8AttentionGpuTest, TheSwitchTakesSelfAttentionAndLeavesCrossAttention) {
  SKIP_WITHOUT_FP8_ATTENTION();
  const at::TensorOptions bf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  const at::Tensor q = at::randn({1, 777, 4, 128}, bf16);
  const at::Tensor k = at::randn({1, 777, 4, 128}, bf16), v = at::randn({1, 777, 4, 128}, bf16);
  ParallelContext fp8;
  fp8.fp8_attention = true;
  EXPECT_TRUE(at::equal(Attention(q, k, v, fp8, AttentionKind::kSelf), Fp8Attention(q, k, v)));
  EXPECT_TRUE(at::equal(Attention(q, k, v, fp8, AttentionKind::kCross), LocalAttention(q, k, v)));
}

#endif

}  // namespace
}  // namespace raylight::models
