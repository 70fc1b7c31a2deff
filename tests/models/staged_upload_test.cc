// Staged uploads (models/core/staged_upload.h, issue #27 item 4): every byte of every tensor
// arrives, in order, whatever the chunking (tensors smaller than a chunk, spanning several,
// empty; fewer buffers than chunks, so buffers are refilled), and an error from the caller stops
// the readers. On the CPU the pipeline copies through pageable buffers; on the GPU (label `gpu`)
// through pinned ones, against `tensor.to(cuda)` (whose rate it prints beside its own; every GPU
// test that loads a model places it through this path: weights.cc ResidentWeights).
#include "models/core/staged_upload.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#ifdef RAYLIGHT_TEST_GPU
#include <c10/cuda/CUDAFunctions.h>

#include <chrono>
#endif

namespace raylight::models {
namespace {

// Random bytes, fresh per run, of each size.
std::vector<at::Tensor> RandomTensors(const std::vector<int64_t>& sizes) {
  std::vector<at::Tensor> tensors;
  for (const int64_t size : sizes) {
    tensors.push_back(at::randint(0, 256, {size}, at::TensorOptions().dtype(at::kByte)));
  }
  return tensors;
}

#ifndef RAYLIGHT_TEST_GPU
TEST(StagedUploadTest, EveryByteArrivesInOrderWhateverTheChunking) {
  const std::vector<at::Tensor> sources = RandomTensors({1, 999, 1000, 1001, 0, 7777, 3, 25000});
  for (const auto& [chunk, readers, buffers] :
       std::vector<std::tuple<int64_t, int, int>>{{1000, 2, 3}, {64, 4, 4}, {1 << 20, 2, 16}}) {
    std::vector<int> order;
    std::vector<at::Tensor> copies;
    UploadStats stats;
    const absl::Status status = UploadStaged(
        sources, at::kCPU, {.readers = readers, .chunk_bytes = chunk, .buffers = buffers},
        [&](int i, at::Tensor copy) {
          order.push_back(i);
          copies.push_back(std::move(copy));
          return absl::OkStatus();
        },
        &stats);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_EQ(order.size(), sources.size());
    int64_t bytes = 0;
    for (size_t i = 0; i < sources.size(); ++i) {
      EXPECT_EQ(order[i], static_cast<int>(i));
      if (sources[i].numel() > 0) {
        EXPECT_NE(copies[i].data_ptr(), sources[i].data_ptr());  // a copy, not the view
      }
      EXPECT_TRUE(at::equal(copies[i], sources[i])) << "tensor " << i << ", chunk " << chunk;
      bytes += sources[i].nbytes();
    }
    EXPECT_EQ(stats.bytes, bytes);
  }
  // Other dtypes and shapes keep theirs.
  const at::Tensor matrix = at::randn({33, 17}).to(at::kBFloat16);
  ASSERT_TRUE(UploadStaged({matrix}, at::kCPU, {.chunk_bytes = 100}, [&](int, at::Tensor copy) {
                EXPECT_EQ(copy.scalar_type(), at::kBFloat16);
                EXPECT_TRUE(at::equal(copy, matrix));
                return absl::OkStatus();
              }).ok());
}

TEST(StagedUploadTest, AnErrorFromTheCallerStopsTheReaders) {
  const std::vector<at::Tensor> sources = RandomTensors({5000, 5000, 5000, 5000, 5000});
  int calls = 0;
  const absl::Status status = UploadStaged(
      sources, at::kCPU, {.readers = 2, .chunk_bytes = 512, .buffers = 2}, [&](int i, at::Tensor) {
        ++calls;
        return i == 1 ? absl::InternalError("placing tensor 1") : absl::OkStatus();
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(calls, 2);
  // A source that is not a contiguous CPU tensor is refused before anything is read.
  const at::Tensor strided = at::randn({8, 8}).t();
  EXPECT_EQ(UploadStaged({strided}, at::kCPU, {}, [](int, at::Tensor) { return absl::OkStatus(); })
                .code(),
            absl::StatusCode::kInvalidArgument);
}

#else
TEST(StagedUploadGpuTest, PinnedStagingEqualsPageableCopiesAndReportsItsRate) {
  const at::Device cuda("cuda");
  // 1 GiB in tensors of Wan-like sizes (a 5120 x 13824 bf16 linear is 142 MB), odd tails too.
  std::vector<int64_t> sizes;
  for (int i = 0; i < 7; ++i) sizes.push_back(int64_t{5120} * 13824 * 2 + i * 4099);
  sizes.push_back(12345);
  const std::vector<at::Tensor> sources = RandomTensors(sizes);
  std::vector<at::Tensor> copies;
  UploadStats stats;
  const absl::Status status = UploadStaged(
      sources, cuda, {},
      [&](int, at::Tensor copy) {
        copies.push_back(std::move(copy));
        return absl::OkStatus();
      },
      &stats);
  ASSERT_TRUE(status.ok()) << status;
  for (size_t i = 0; i < sources.size(); ++i) {
    ASSERT_TRUE(copies[i].is_cuda());
    EXPECT_TRUE(at::equal(copies[i], sources[i].to(cuda))) << i;
  }
  c10::cuda::device_synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (const at::Tensor& source : sources) (void)source.to(cuda);
  c10::cuda::device_synchronize();
  const double pageable_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("staged upload: %.2f GB in %.3f s, %.1f GB/s (pageable .to(cuda): %.1f GB/s)\n",
              stats.bytes / 1e9, stats.seconds, stats.gb_per_second(),
              stats.bytes / pageable_s / 1e9);
  EXPECT_GT(stats.gb_per_second(), 0);
}
#endif

}  // namespace
}  // namespace raylight::models
