#include "models/parallel/comm/peer_memory.h"

#include <cuda.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "models/parallel/comm/strided_copy.h"
#include "runtime/common/status_macros.h"

namespace raylight::comm {
namespace {

absl::Status CudaError(absl::string_view what, cudaError_t error) {
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(error)));
}

// The stream memory operations, from the driver through the runtime (nothing links libcuda, so
// binaries still start on machines without a driver).
struct StreamMemOps {
  using WriteFn = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
  using WaitFn = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
  WriteFn write = nullptr;
  WaitFn wait = nullptr;
};

absl::StatusOr<StreamMemOps> LoadStreamMemOps() {
  static const absl::StatusOr<StreamMemOps> ops = []() -> absl::StatusOr<StreamMemOps> {
    StreamMemOps found;
    cudaDriverEntryPointQueryResult result;
    void* write = nullptr;
    void* wait = nullptr;
    if (cudaGetDriverEntryPointByVersion("cuStreamWriteValue32", &write, 12000, cudaEnableDefault,
                                         &result) != cudaSuccess ||
        result != cudaDriverEntryPointSuccess ||
        cudaGetDriverEntryPointByVersion("cuStreamWaitValue32", &wait, 12000, cudaEnableDefault,
                                         &result) != cudaSuccess ||
        result != cudaDriverEntryPointSuccess) {
      return absl::FailedPreconditionError("the driver has no stream memory operations");
    }
    found.write = reinterpret_cast<StreamMemOps::WriteFn>(write);
    found.wait = reinterpret_cast<StreamMemOps::WaitFn>(wait);
    return found;
  }();
  return ops;
}

std::string BootId() {
  std::ifstream file("/proc/sys/kernel/random/boot_id");
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace

PeerIdentity LocalPeerIdentity(int device) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  PeerIdentity identity;
  identity.host = std::hash<std::string>()(std::string(host) + "/" + BootId());
  identity.device = device;
  return identity;
}

bool CanMapAll(const PeerIdentity& self, absl::Span<const PeerIdentity> all, int rank) {
  if (!LoadStreamMemOps().ok()) return false;
  for (int peer = 0; peer < static_cast<int>(all.size()); ++peer) {
    if (peer == rank) continue;
    if (all[peer].host != self.host) return false;
    if (all[peer].device == self.device) continue;  // one device: IPC maps it directly
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, self.device, all[peer].device) != cudaSuccess || !can) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::unique_ptr<PeerMemory>> PeerMemory::Create(int64_t bytes, int rank, int size,
                                                               int device, Exchange exchange) {
  if (size * sizeof(uint32_t) > static_cast<size_t>(kFlagBytes)) {
    return absl::InvalidArgumentError(absl::StrCat("PeerWorkspace: ", size, " ranks are too many"));
  }
  std::unique_ptr<PeerMemory> memory(new PeerMemory(rank, size, bytes));
  memory->blocks_.assign(size, nullptr);
  void* block = nullptr;
  if (cudaError_t e = cudaMalloc(&block, kFlagBytes + bytes); e != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrCat("PeerWorkspace: cannot allocate ", bytes,
                                                     " bytes on cuda:", device, ": ",
                                                     cudaGetErrorString(e)));
  }
  memory->blocks_[rank] = static_cast<char*>(block);
  // The flags start at zero before any peer can learn where they are.
  if (cudaError_t e = cudaMemset(block, 0, kFlagBytes); e != cudaSuccess) {
    return CudaError("PeerWorkspace: clearing the flags", e);
  }
  if (cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess) {
    return CudaError("PeerWorkspace: clearing the flags", e);
  }
  cudaIpcMemHandle_t handle;
  if (cudaError_t e = cudaIpcGetMemHandle(&handle, block); e != cudaSuccess) {
    return CudaError("PeerWorkspace: cudaIpcGetMemHandle", e);
  }
  std::vector<uint8_t> mine(sizeof(handle));
  std::memcpy(mine.data(), &handle, sizeof(handle));
  RL_ASSIGN_OR_RETURN(std::vector<uint8_t> all, exchange(mine));
  if (all.size() != size * sizeof(handle)) {
    return absl::InternalError("PeerWorkspace: the handle exchange returned the wrong size");
  }
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    cudaIpcMemHandle_t theirs;
    std::memcpy(&theirs, all.data() + peer * sizeof(handle), sizeof(handle));
    void* mapped = nullptr;
    if (cudaError_t e = cudaIpcOpenMemHandle(&mapped, theirs, cudaIpcMemLazyEnablePeerAccess);
        e != cudaSuccess) {
      cudaGetLastError();
      return CudaError(absl::StrCat("PeerWorkspace: mapping rank ", peer, "'s memory"), e);
    }
    memory->blocks_[peer] = static_cast<char*>(mapped);
  }
  return memory;
}

PeerMemory::~PeerMemory() {
  for (int peer = 0; peer < size_; ++peer) {
    if (blocks_[peer] == nullptr) continue;
    if (peer == rank_) {
      cudaFree(blocks_[peer]);
    } else {
      cudaIpcCloseMemHandle(blocks_[peer]);
    }
  }
}

absl::Status PeerMemory::Put(const void* source, absl::Span<const int64_t> sizes,
                             absl::Span<const int64_t> source_strides,
                             absl::Span<const int64_t> target_strides, int64_t element,
                             int64_t target_offset, int peer, cudaStream_t stream) {
  return EnqueueStridedCopy(blocks_[peer] + kFlagBytes + target_offset, target_strides, source,
                            source_strides, sizes, element, stream);
}

absl::Status PeerMemory::Fence(cudaStream_t stream) {
  RL_ASSIGN_OR_RETURN(StreamMemOps ops, LoadStreamMemOps());
  const uint32_t sequence = ++sequence_;
  const auto flag = [](char* block, int index) {
    return reinterpret_cast<CUdeviceptr>(block + index * sizeof(uint32_t));
  };
  // The write carries a memory barrier (the default flags), so a peer that sees it also sees
  // this stream's earlier copies into its block.
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    if (ops.write(stream, flag(blocks_[peer], rank_), sequence, CU_STREAM_WRITE_VALUE_DEFAULT) !=
        CUDA_SUCCESS) {
      return absl::InternalError("PeerFence: cuStreamWriteValue32 to a peer failed");
    }
  }
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    // GEQ compares cyclically, so the sequence may wrap.
    if (ops.wait(stream, flag(blocks_[rank_], peer), sequence, CU_STREAM_WAIT_VALUE_GEQ) !=
        CUDA_SUCCESS) {
      return absl::InternalError("PeerFence: cuStreamWaitValue32 failed");
    }
  }
  return absl::OkStatus();
}

void PeerMemory::ReleaseWaits() {
  // Far ahead of any sequence a wait can be for (the comparison is cyclic over 2^32).
  std::vector<uint32_t> release(size_, sequence_.load() + (1u << 30));
  cudaStream_t stream;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) return;
  cudaMemcpyAsync(blocks_[rank_], release.data(), release.size() * sizeof(uint32_t),
                  cudaMemcpyHostToDevice, stream);
  cudaStreamSynchronize(stream);
  cudaStreamDestroy(stream);
}

}  // namespace raylight::comm
