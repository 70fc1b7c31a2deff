// The Hopper attention kernel (models/core/flash_attention.h: FlashInfer's sm_90a prefill kernel,
// LocalAttention's default for bf16 on H100 / H200). On the CPU it refuses by name and
// LocalAttention's backends all run libtorch's kernel. On the GPU (label `gpu`; skipped with the
// reason where the device is not sm_90), on random inputs fresh per run: against fp32 attention
// within bf16 rounding, as close as cuDNN's bf16 kernel is, at Wan's head size over lengths that
// do and do not divide the kernel's 128 x 192 tiles, self- and cross-attention, grouped heads, a
// batch of two; strided views read as they are; the same bits on every run; and LocalAttention's
// choice (the kernel under kAuto, cuDNN under kCudnn, other inputs on cuDNN).
#include "models/core/flash_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "models/core/attention.h"
#include "tests/models/wan_test_util.h"

namespace raylight::models {
namespace {

using testing_util::RelativeL2;

#ifndef RAYLIGHT_TEST_GPU
TEST(FlashAttentionTest, RefusesByNameOnTheCpuWhereEveryBackendRunsLibtorchs) {
  std::string why;
  EXPECT_FALSE(FlashAttentionSm90Runs(at::kCPU, &why));
  EXPECT_FALSE(why.empty());
  const at::Tensor q = at::randn({2, 7, 4, 128}).to(at::kBFloat16);
  const at::Tensor k = at::randn({2, 5, 4, 128}).to(at::kBFloat16), v = at::randn_like(k);
  EXPECT_FALSE(FlashAttentionSm90Takes(q, k, v));
  try {
    FlashAttentionSm90(q, k, v);
    ADD_FAILURE() << "the Hopper kernel ran on the CPU";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what_without_backtrace()).find("attention"), std::string::npos)
        << error.what_without_backtrace();
  }
  const at::Tensor automatic = LocalAttention(q, k, v);
  for (const AttentionBackend backend : {AttentionBackend::kCudnn, AttentionBackend::kSdpa}) {
    const AttentionBackendScope scope(backend);
    EXPECT_TRUE(at::equal(LocalAttention(q, k, v), automatic));
  }
}
#else

#define SKIP_WITHOUT_THE_KERNEL()                                                     \
  do {                                                                                \
    std::string why;                                                                  \
    if (!FlashAttentionSm90Runs(at::Device(at::kCUDA, 0), &why)) GTEST_SKIP() << why; \
  } while (0)

const at::TensorOptions kBf16 = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);

// fp32 attention by the math kernel ([B, L, H, D] in and out), k and v repeated to q's heads.
at::Tensor Fp32Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t group = q.size(2) / k.size(2);
  auto heads = [&](const at::Tensor& t) {
    return t.to(at::kFloat).repeat_interleave(group, /*dim=*/2).transpose(1, 2);
  };
  const at::Tensor out = std::get<0>(
      at::_scaled_dot_product_attention_math(q.to(at::kFloat).transpose(1, 2), heads(k), heads(v)));
  return out.transpose(1, 2);
}

// cuDNN's bf16 kernel, what kAuto ran before (equal heads only).
at::Tensor CudnnAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const AttentionBackendScope scope(AttentionBackend::kCudnn);
  return LocalAttention(q, k, v);
}

struct Shape {
  int64_t batch, q_len, kv_len, heads, kv_heads;
};

TEST(FlashAttentionGpuTest, WithinBf16OfFp32AsCudnnIs) {
  SKIP_WITHOUT_THE_KERNEL();
  const std::vector<Shape> shapes = {
      {1, 32760, 32760, 2, 2},            // the Wan 14B 832x480x81 sequence (two of its 40 heads)
      {2, 4096 + 77, 4096 + 77, 12, 12},  // a batch, lengths off the tiles
      {1, 1000, 1000, 12, 12},
      {2, 3000, 512, 12, 12},  // cross-attention to 512 text tokens
      {1, 2048, 333, 8, 2},    // grouped heads, a key set off the tiles
  };
  for (const Shape& s : shapes) {
    SCOPED_TRACE(testing::Message() << "B " << s.batch << " Lq " << s.q_len << " Lk " << s.kv_len
                                    << " H " << s.heads << " Hkv " << s.kv_heads);
    // Scores of standard deviation ~2: a softmax neither flat nor one-hot.
    const at::Tensor q = (at::randn({s.batch, s.q_len, s.heads, 128}, kBf16) * 2).contiguous();
    const at::Tensor k = at::randn({s.batch, s.kv_len, s.kv_heads, 128}, kBf16);
    const at::Tensor v = at::randn_like(k);
    ASSERT_TRUE(FlashAttentionSm90Takes(q, k, v));
    const at::Tensor exact = Fp32Attention(q, k, v);
    const double ours = RelativeL2(FlashAttentionSm90(q, k, v).to(at::kFloat), exact);
    // cuDNN's error beside it (cuDNN takes equal heads only; bf16's rounding bounds the rest).
    const double cudnn =
        s.heads == s.kv_heads ? RelativeL2(CudnnAttention(q, k, v).to(at::kFloat), exact) : 2e-3;
    std::printf("Lq %ld Lk %ld: ours %.5f from fp32, cuDNN %.5f\n", static_cast<long>(s.q_len),
                static_cast<long>(s.kv_len), ours, cudnn);
    // Both round the probabilities and the output to bf16 (2^-9 relative each): within twice
    // cuDNN's distance, and under 1e-2.
    EXPECT_LT(ours, std::max(2 * cudnn, 4e-3));
    EXPECT_LT(ours, 1e-2);
  }
}

TEST(FlashAttentionGpuTest, ReadsStridedViewsAsTheyAreAndGivesTheSameBitsEachRun) {
  SKIP_WITHOUT_THE_KERNEL();
  // q, k, v as the three thirds of one fused projection: token stride 3 * H * D.
  const at::Tensor qkv = at::randn({2, 1500, 3, 10, 128}, kBf16);
  const at::Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
  ASSERT_FALSE(q.is_contiguous());
  ASSERT_TRUE(FlashAttentionSm90Takes(q, k, v));
  const at::Tensor strided = FlashAttentionSm90(q, k, v);
  EXPECT_TRUE(
      at::equal(strided, FlashAttentionSm90(q.contiguous(), k.contiguous(), v.contiguous())));
  EXPECT_TRUE(at::equal(strided, FlashAttentionSm90(q, k, v)));
  EXPECT_LT(RelativeL2(strided.to(at::kFloat), Fp32Attention(q, k, v)), 1e-2);
}

TEST(FlashAttentionGpuTest, LocalAttentionRunsItUnderAutoAndCudnnOtherwise) {
  SKIP_WITHOUT_THE_KERNEL();
  const at::Tensor q = at::randn({1, 2000, 8, 128}, kBf16);
  const at::Tensor k = at::randn_like(q), v = at::randn_like(q);
  const at::Tensor flash = FlashAttentionSm90(q, k, v);
  EXPECT_TRUE(at::equal(LocalAttention(q, k, v), flash));
  const at::Tensor cudnn = CudnnAttention(q, k, v);
  EXPECT_FALSE(at::equal(cudnn, flash));  // another kernel: another summation order
  EXPECT_LT(RelativeL2(cudnn.to(at::kFloat), flash.to(at::kFloat)), 1e-2);
  {
    const AttentionBackendScope scope(AttentionBackend::kSdpa);
    EXPECT_FALSE(at::equal(LocalAttention(q, k, v), flash));
  }
  // Inputs the kernel does not take go to cuDNN: fp16, head size 64.
  const at::Tensor half = q.to(at::kHalf);
  EXPECT_FALSE(FlashAttentionSm90Takes(half, half, half));
  EXPECT_TRUE(at::equal(LocalAttention(half, half, half), CudnnAttention(half, half, half)));
  const at::Tensor small = at::randn({1, 500, 8, 64}, kBf16);
  EXPECT_FALSE(FlashAttentionSm90Takes(small, small, small));
  EXPECT_TRUE(at::equal(LocalAttention(small, small, small), CudnnAttention(small, small, small)));
  EXPECT_THROW(FlashAttentionSm90(small, small, small), c10::Error);
}

#endif

}  // namespace
}  // namespace raylight::models
