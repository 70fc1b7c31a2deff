// Device memory that the other processes of a group on the same host map and write into with
// copy-engine copies: the NCCL communicator's PeerWorkspace, PutToPeer and PeerFence.
//
// Each rank allocates its block with cudaMalloc and exports it (CUDA IPC); every rank maps every
// other rank's block. A put is cudaMemcpy2DAsync into the peer's mapping (over NVLink or PCIe,
// executed by a copy engine, so it runs beside kernels that occupy every SM, which a copy inside
// one device would not: those run on the SMs). A fence is the copy-engine collectives' protocol
// (NCCL's CE all-to-all does the same): each rank writes a sequence number into a flag of every
// peer's block (a stream memory operation, ordered after the stream's earlier copies) and waits
// until every peer's flag in its own block has reached it.
//
// Not thread-safe; the communicator serialises calls. Everything is enqueued on the stream given.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace raylight::comm {

// What every rank publishes so the others can decide whether they can map its memory.
struct PeerIdentity {
  uint64_t host = 0;  // a hash of the host name and boot id
  int32_t device = 0;
  int32_t can_map_all = 0;  // filled in the second round: this rank can map every peer
};

// This process's identity on `device`.
PeerIdentity LocalPeerIdentity(int device);
// Whether the rank on `self` can map the memory of every rank in `all` (same host, peer access).
bool CanMapAll(const PeerIdentity& self, absl::Span<const PeerIdentity> all, int rank);

class PeerMemory {
 public:
  // All-gathers `size` equal byte records (this rank's `mine`) in rank order, on every rank.
  using Exchange =
      absl::FunctionRef<absl::StatusOr<std::vector<uint8_t>>(const std::vector<uint8_t>& mine)>;

  // Collective over the group: allocates `bytes` on `device` (the current device) and maps every
  // peer's block. The ranks must have agreed (CanMapAll on every rank) beforehand.
  static absl::StatusOr<std::unique_ptr<PeerMemory>> Create(int64_t bytes, int rank, int size,
                                                            int device, Exchange exchange);
  ~PeerMemory();  // unmaps the peers' blocks and frees this one; the device must be idle
  PeerMemory(const PeerMemory&) = delete;
  PeerMemory& operator=(const PeerMemory&) = delete;

  // This rank's usable bytes (after the flags).
  void* data() const { return blocks_[rank_] + kFlagBytes; }
  int64_t bytes() const { return bytes_; }

  // Copies `sizes` elements of `element` bytes laid out with `source_strides` (elements) at
  // `source` into `peer`'s block at byte `target_offset` with `target_strides`, on `stream`.
  absl::Status Put(const void* source, absl::Span<const int64_t> sizes,
                   absl::Span<const int64_t> source_strides,
                   absl::Span<const int64_t> target_strides, int64_t element, int64_t target_offset,
                   int peer, cudaStream_t stream);
  // Signals every peer and waits for every peer's signal, on `stream`.
  absl::Status Fence(cudaStream_t stream);
  // Lets every fence this rank's streams wait in pass (the group failed; what follows is
  // garbage, but nothing hangs on a dead peer). Any thread.
  void ReleaseWaits();

 private:
  // Room for one 32-bit flag per rank, at the start of every block.
  static constexpr int64_t kFlagBytes = 4096;

  PeerMemory(int rank, int size, int64_t bytes) : rank_(rank), size_(size), bytes_(bytes) {}

  const int rank_;
  const int size_;
  const int64_t bytes_;
  std::vector<char*> blocks_;  // every rank's block in this process (ours at rank_)
  std::atomic<uint32_t> sequence_{0};
};

}  // namespace raylight::comm
