// CopyRows (models/core/copy_rows.h) on a GPU against PyTorch's copy_, for the layouts the
// Ulysses exchanges pack and unpack: head groups of [B, L, H, D] (narrowed source or
// destination), token ranges (rows with one stride only for B = 1), and layouts that take
// several row runs or none (a transposed source, columns not contiguous: copy_), which must still
// be right. Random data each run.
#include "models/core/copy_rows.h"

#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>

namespace raylight::models {
namespace {

class CopyRowsTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!at::cuda::is_available()) GTEST_SKIP() << "needs a GPU";
  }
  static at::Tensor Random(at::IntArrayRef shape) {
    return at::randn(shape, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
  }
  // CopyRows(dst, src) leaves dst equal to src, and nothing outside dst's view changed.
  static void Check(const at::Tensor& base, const at::Tensor& dst, const at::Tensor& src,
                    const std::string& what) {
    const at::Tensor before = base.clone();
    CopyRows(dst, src);
    EXPECT_TRUE(at::equal(dst, src)) << what;
    const at::Tensor expected = before.clone();
    // The same copy through PyTorch on the snapshot, to compare the whole base.
    at::Tensor expected_view = expected.as_strided(dst.sizes(), dst.strides(),
                                                   dst.storage_offset() - base.storage_offset());
    expected_view.copy_(src);
    EXPECT_TRUE(at::equal(base, expected)) << what << ": wrote outside the view";
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

TEST_F(CopyRowsTest, LayoutsWithoutRowsFallBackToCopy) {
  const at::Tensor x = Random({2, 8, 6, 16});
  at::Tensor dst = Random({2, 6, 8, 16});
  Check(dst, dst, x.transpose(1, 2), "transposed source");
  at::Tensor odd = Random({2, 8, 6, 16});
  Check(odd, odd, Random({2, 8, 16, 6}).transpose(2, 3), "columns not contiguous");
  at::Tensor empty = Random({0, 8, 6, 16});
  CopyRows(empty, Random({0, 8, 6, 16}));  // nothing to copy, and no error
}

}  // namespace
}  // namespace raylight::models
