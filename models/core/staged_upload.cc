#include "models/core/staged_upload.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "models/core/transfer_pool.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace raylight::models {
namespace {

struct Chunk {
  int tensor = 0;
  int64_t offset = 0;  // in the tensor's bytes
  int64_t bytes = 0;
};

// The hand-over between the readers and the issuing thread. Chunk c goes through buffer
// c % buffers: a reader fills it once chunk c - buffers's copy is done, the issuing thread copies
// it out once filled, in chunk order.
class Handover {
 public:
  explicit Handover(size_t chunks) : filled_(chunks, false) {}

  // Reader: waits until chunk `c`'s buffer was last used by a chunk whose copy is enqueued.
  // False when stopped.
  bool WaitForBuffer(int64_t c, int buffers) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stopped_ || enqueued_ > c - buffers; });
    return !stopped_;
  }
  void Filled(int64_t c) {
    {
      std::lock_guard lock(mu_);
      filled_[c] = true;
    }
    cv_.notify_all();
  }
  // Issuer: waits until chunk `c` is filled. False when stopped.
  bool WaitFilled(int64_t c) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stopped_ || filled_[c]; });
    return !stopped_;
  }
  void Enqueued(int64_t c) {
    {
      std::lock_guard lock(mu_);
      enqueued_ = c + 1;
    }
    cv_.notify_all();
  }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> filled_;
  int64_t enqueued_ = 0;  // chunks [0, enqueued_) have their copies enqueued
  bool stopped_ = false;
};

std::vector<Chunk> ChunksOf(const std::vector<at::Tensor>& sources, int64_t chunk_bytes) {
  std::vector<Chunk> chunks;
  for (int i = 0; i < static_cast<int>(sources.size()); ++i) {
    const int64_t bytes = static_cast<int64_t>(sources[i].nbytes());
    for (int64_t offset = 0; offset < bytes; offset += chunk_bytes) {
      chunks.push_back({i, offset, std::min(chunk_bytes, bytes - offset)});
    }
  }
  return chunks;
}

}  // namespace

absl::Status UploadStaged(const std::vector<at::Tensor>& sources, at::Device device,
                          const StagedUploadOptions& options,
                          absl::FunctionRef<absl::Status(int index, at::Tensor copy)> placed,
                          UploadStats* stats) {
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < sources.size(); ++i) {
    if (!sources[i].device().is_cpu() || !sources[i].is_contiguous()) {
      return absl::InvalidArgumentError(
          absl::StrCat("staged upload: source ", i, " is not a contiguous CPU tensor"));
    }
  }
  if (options.chunk_bytes <= 0) {
    return absl::InvalidArgumentError("staged upload: chunk_bytes must be positive");
  }
  const bool cuda = device.is_cuda();
#ifndef RAYLIGHT_HAVE_CUDA
  if (cuda) return absl::FailedPreconditionError("staged upload: built without CUDA");
#endif
  const std::vector<Chunk> chunks = ChunksOf(sources, options.chunk_bytes);
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int readers = std::max(
      1, std::min({options.readers, cores, static_cast<int>(std::max<size_t>(chunks.size(), 1))}));
  const int buffers = std::max(
      readers, std::min(options.buffers, static_cast<int>(std::max<size_t>(chunks.size(), 1))));
  int64_t largest = 0;
  for (const Chunk& chunk : chunks) largest = std::max(largest, chunk.bytes);
  std::vector<at::Tensor> staging;
  for (int b = 0; b < buffers && largest > 0; ++b) staging.push_back(HostBytes(largest, cuda));

#ifdef RAYLIGHT_HAVE_CUDA
  std::optional<c10::cuda::CUDAGuard> guard;
  std::vector<at::cuda::CUDAEvent> copied;  // per buffer: its last copy is done
  if (cuda) {
    guard.emplace(device);
    copied.resize(buffers);
  }
#endif
  auto wait_copied = [&]([[maybe_unused]] int buffer) {
#ifdef RAYLIGHT_HAVE_CUDA
    if (cuda) copied[buffer].synchronize();
#endif
  };

  Handover handover(chunks.size());
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < readers && !chunks.empty(); ++r) {
    threads.emplace_back([&] {
      for (int64_t c = next++; c < static_cast<int64_t>(chunks.size()); c = next++) {
        const int buffer = static_cast<int>(c % buffers);
        if (!handover.WaitForBuffer(c, buffers)) return;
        wait_copied(buffer);
        const Chunk& chunk = chunks[c];
        std::memcpy(staging[buffer].data_ptr(),
                    static_cast<const char*>(sources[chunk.tensor].data_ptr()) + chunk.offset,
                    chunk.bytes);
        handover.Filled(c);
      }
    });
  }
  // On every way out: the readers stopped and joined, every copy out of the staging done.
  bool finished = false;
  auto finish = [&] {
    if (finished) return;
    finished = true;
    handover.Stop();
    for (std::thread& thread : threads) thread.join();
    for (int b = 0; b < buffers; ++b) wait_copied(b);
  };
  const absl::Cleanup finish_on_exit = [&] { finish(); };

  int64_t c = 0;
  int64_t total = 0;
  for (int i = 0; i < static_cast<int>(sources.size()); ++i) {
    const at::Tensor& source = sources[i];
    at::Tensor copy = at::empty(source.sizes(), source.options().device(device));
    for (; c < static_cast<int64_t>(chunks.size()) && chunks[c].tensor == i; ++c) {
      if (!handover.WaitFilled(c)) return absl::AbortedError("staged upload: stopped");
      const Chunk& chunk = chunks[c];
      const int buffer = static_cast<int>(c % buffers);
      char* target = static_cast<char*>(copy.data_ptr()) + chunk.offset;
      if (cuda) {
#ifdef RAYLIGHT_HAVE_CUDA
        const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(device.index());
        const cudaError_t issued = cudaMemcpyAsync(target, staging[buffer].data_ptr(), chunk.bytes,
                                                   cudaMemcpyHostToDevice, stream.stream());
        if (issued != cudaSuccess) {
          return absl::InternalError(
              absl::StrCat("staged upload: cudaMemcpyAsync: ", cudaGetErrorString(issued)));
        }
        copied[buffer].record(stream);
#endif
      } else {
        std::memcpy(target, staging[buffer].data_ptr(), chunk.bytes);
      }
      total += chunk.bytes;
      handover.Enqueued(c);
    }
    if (absl::Status status = placed(i, std::move(copy)); !status.ok()) return status;
  }
  finish();
  if (stats != nullptr) {
    stats->bytes = total;
    stats->seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return absl::OkStatus();
}

}  // namespace raylight::models
