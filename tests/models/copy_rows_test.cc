// CopyRows (models/core/copy_rows.h) against PyTorch's copy_, for the layouts the Ulysses
// exchanges pack and unpack: head groups of [B, L, H, D] (narrowed source or destination, read
// as 16-, 8- or 4-byte words as the head width allows), token ranges, and other layouts (a
// transposed source; columns not contiguous and an odd offset, which no word fits: copy_), all
// bit for bit (NaN payloads and negative zeros included). Random data each run; on the CPU, and
// built with RAYLIGHT_TEST_GPU on the GPU.
#include "models/core/copy_rows.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace raylight::models {
namespace {

class CopyRowsTest : public testing::Test {
 protected:
  void SetUp() override {
#if RAYLIGHT_TEST_GPU
    if (!at::hasCUDA()) GTEST_SKIP() << "needs a GPU";
#endif
  }
#if RAYLIGHT_TEST_GPU
  static constexpr at::DeviceType kDevice = at::kCUDA;
#else
  static constexpr at::DeviceType kDevice = at::kCPU;
#endif
  static at::Tensor Random(at::IntArrayRef shape, at::ScalarType dtype = at::kBFloat16) {
    return at::randn(shape, at::TensorOptions().dtype(dtype).device(kDevice));
  }
  // Equal bit for bit (at::equal calls NaN unequal and -0 equal to 0).
  static bool SameBits(const at::Tensor& a, const at::Tensor& b) {
    const at::ScalarType bits = a.element_size() == 2 ? at::kShort : at::kInt;
    return at::equal(a.contiguous().view(bits), b.contiguous().view(bits));
  }
  // CopyRows(dst, src) leaves dst equal to src, and nothing outside dst's view changed.
  static void Check(const at::Tensor& base, const at::Tensor& dst, const at::Tensor& src,
                    const std::string& what) {
    const at::Tensor before = base.clone();
    CopyRows(dst, src);
    EXPECT_TRUE(SameBits(dst, src)) << what;
    const at::Tensor expected = before.clone();
    // The same copy through PyTorch on the snapshot, to compare the whole base.
    at::Tensor expected_view = expected.as_strided(dst.sizes(), dst.strides(),
                                                   dst.storage_offset() - base.storage_offset());
    expected_view.copy_(src);
    EXPECT_TRUE(SameBits(base, expected)) << what << ": wrote outside the view";
  }
};

TEST_F(CopyRowsTest, PacksAndUnpacksHeadGroupsAndTokenRanges) {
  for (int64_t batch : {1, 3}) {
    const int64_t tokens = 37, heads = 12, dim = 16;
    const at::Tensor x = Random({batch, tokens, heads, dim});
    // Pack: head group 1 of 3 into a contiguous piece.
    at::Tensor piece = Random({batch, tokens, 4, dim});
    Check(piece, piece, x.narrow(2, 4, 4), "pack, batch " + std::to_string(batch));
    // Unpack: a contiguous piece into head group 2 of 3.
    at::Tensor whole = Random({batch, tokens, heads, dim});
    Check(whole, whole.narrow(2, 8, 4), Random({batch, tokens, 4, dim}),
          "unpack, batch " + std::to_string(batch));
    // Token range: rows 10..29 of every sample.
    at::Tensor range = Random({batch, 20, heads, dim});
    Check(range, range, x.narrow(1, 10, 20), "tokens, batch " + std::to_string(batch));
  }
}

TEST_F(CopyRowsTest, HeadWidthsOfEveryWordAndSpecialValues) {
  // Head dims of 8, 4 and 2 bf16 values: 16-, 8- and 4-byte words; fp32 heads of 3 values none.
  for (int64_t dim : {8, 4, 2}) {
    at::Tensor x = Random({2, 9, 6, dim});
    x.flatten()[0] = std::numeric_limits<float>::quiet_NaN();
    x.flatten()[1] = -0.0;
    at::Tensor piece = Random({2, 9, 2, dim});
    Check(piece, piece, x.narrow(2, 2, 2), "head dim " + std::to_string(dim));
    at::Tensor whole = Random({2, 9, 6, dim});
    Check(whole, whole.narrow(2, 0, 2), x.narrow(2, 0, 2),
          "unpack, head dim " + std::to_string(dim));
  }
  const at::Tensor odd = Random({2, 9, 6, 3}, at::kFloat);
  at::Tensor piece = Random({2, 9, 2, 3}, at::kFloat);
  Check(piece, piece, odd.narrow(2, 1, 2), "fp32 heads of 3 values");
}

TEST_F(CopyRowsTest, OtherLayoutsAreCopiedExactly) {
  const at::Tensor x = Random({2, 8, 6, 16});
  at::Tensor dst = Random({2, 6, 8, 16});
  Check(dst, dst, x.transpose(1, 2), "transposed source");
  at::Tensor odd = Random({2, 8, 6, 16});
  Check(odd, odd, Random({2, 8, 16, 6}).transpose(2, 3), "columns not contiguous");
  // An offset of one element: no word fits the source.
  const at::Tensor flat = Random({2 * 8 * 6 * 16 + 1});
  at::Tensor shifted = Random({2, 8, 6, 16});
  Check(shifted, shifted, flat.narrow(0, 1, 2 * 8 * 6 * 16).view({2, 8, 6, 16}), "odd offset");
  at::Tensor empty = Random({0, 8, 6, 16});
  CopyRows(empty, Random({0, 8, 6, 16}));  // nothing to copy, and no error
}

}  // namespace
}  // namespace raylight::models
