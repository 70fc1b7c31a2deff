// Copies tensors that view a mapped checkpoint to a device through staging buffers filled by
// parallel readers (issue #27, item 4). A mapped file's pages are in the page cache; one thread's
// copy out of a mapping (page faults included) moves ~6 GB/s, a device's DMA from pinned memory
// several times that, and a pageable copy (`tensor.to(device)`) is both serial and staged by the
// driver through its own small pinned buffers. Here reader threads copy chunks of the tensors'
// bytes into pinned buffers in parallel while the calling thread enqueues each filled buffer's
// copy to the device on the current stream, in order; a buffer is refilled once its copy is done
// (a CUDA event). Each tensor is handed to the caller as soon as its last chunk is enqueued, so
// the caller's conversions (dtype, fp8 quantisation, LoRA merges) run on the stream behind its
// copy while later tensors are still being read: the device holds one raw tensor at a time
// beyond what is placed.
//
// On a CPU device the same pipeline copies into CPU tensors (pageable staging): the tests check
// the chunking and the readers' hand-over there; loaders keep zero-copy views on the CPU.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace raylight::models {

struct StagedUploadOptions {
  int readers = 8;  // threads copying out of the mapping (at most the cores)
  int64_t chunk_bytes = int64_t{16} << 20;  // one staging buffer; larger tensors span several
  int buffers = 16;                         // staging buffers in flight (at least `readers`)
};

struct UploadStats {
  int64_t bytes = 0;
  double seconds = 0;  // until the last copy was enqueued and every reader had finished
  double gb_per_second() const { return seconds > 0 ? bytes / seconds / 1e9 : 0; }
};

// Copies each of `sources` (CPU tensors, contiguous) to `device` and calls `placed(i, copy)` on
// this thread for each, in order, once the copy's bytes are enqueued on the current stream
// (anything `placed` enqueues there runs after them). Stops at the first error `placed` returns.
// The staging buffers are pinned for a CUDA device; every copy has finished when this returns.
absl::Status UploadStaged(const std::vector<at::Tensor>& sources, at::Device device,
                          const StagedUploadOptions& options,
                          absl::FunctionRef<absl::Status(int index, at::Tensor copy)> placed,
                          UploadStats* stats = nullptr);

}  // namespace raylight::models
