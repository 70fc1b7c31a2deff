// A fixed pool of device byte buffers that blocks' weights are moved into ahead of use (copies
// from pinned host memory for layer swap, all-gathers for FSDP) and read from by the compute.
//
// On a GPU the fills run on a stream of their own, ordered by CUDA events both ways: the compute
// stream waits for a block's fill before reading its buffer, and a buffer is refilled only after
// the compute that read it (recorded at Release) has finished. Nothing blocks the host, so the
// fill of block i+1 overlaps the compute of block i. The buffers are allocated once: a step
// allocates nothing for weights. On the CPU (or with `side_stream` false) fills run in order on
// the caller's stream and the same bookkeeping applies, so the CPU tests exercise the schedule.
//
// One thread uses a pool (the one that runs the model).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace raylight::models {

// `bytes` of host memory for a pool's fills to read from: page-locked when `pinned` and CUDA is
// present (so that copies from it are asynchronous DMA), allocated at exactly that size (the
// caching host allocator rounds every allocation up to a power of two: 703 MB blocks would take
// 1 GiB each). Freed when the last tensor viewing it goes.
at::Tensor HostBytes(int64_t bytes, bool pinned);

class TransferPool {
 public:
  TransferPool(int buffers, int64_t buffer_bytes, at::Device device, bool side_stream = true);
  ~TransferPool();  // waits for the fills in flight (they write into buffers freed here)
  TransferPool(const TransferPool&) = delete;
  TransferPool& operator=(const TransferPool&) = delete;

  // Issues `fill(buffer)` for `block` into a buffer nobody reads, with the fill stream current
  // (the fill enqueues its copies or collectives there). A no-op when a buffer still holds the
  // block. A buffer is taken from, in order: unused ones, those released longest ago, those
  // filled ahead but not acquired (a schedule abandoned by an error). Fails when every buffer is
  // acquired.
  absl::Status Fill(int block, absl::FunctionRef<absl::Status(at::Tensor& buffer)> fill);
  // The block's buffer (the whole buffer: callers view the block's bytes), with the current
  // stream ordered after the fill. Fails when the block was not filled.
  absl::StatusOr<at::Tensor> Acquire(int block);
  // The current stream's reads of the block's buffer are all enqueued.
  void Release(int block);

  int buffers() const { return static_cast<int>(slots_.size()); }
  int64_t buffer_bytes() const { return buffer_bytes_; }
  // Fills issued (not counting the no-op ones): what the tests count to see a schedule's reuse.
  int64_t fills() const { return fills_; }

 private:
  enum class State { kEmpty, kFilled, kAcquired, kReleased };
  struct Slot {
    at::Tensor buffer;
    int block = -1;
    State state = State::kEmpty;
    int64_t last_use = 0;  // when it was last filled or released, for the choice of victim
  };
  struct CudaEvents;  // per slot: filled, released (CUDA only, kept out of this header)

  int Find(int block) const;
  int Victim() const;

  const int64_t buffer_bytes_;
  const at::Device device_;
  std::vector<Slot> slots_;
  std::unique_ptr<CudaEvents> cuda_;
  int64_t clock_ = 0;
  int64_t fills_ = 0;
};

}  // namespace raylight::models
