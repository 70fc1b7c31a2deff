#include "models/core/transfer_pool.h"

#include "absl/strings/str_cat.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace raylight::models {

at::Tensor HostBytes(int64_t bytes, bool pinned) {
  const at::TensorOptions options = at::TensorOptions().dtype(at::kByte);
#ifdef RAYLIGHT_HAVE_CUDA
  if (pinned && bytes > 0) {
    void* data = nullptr;
    if (cudaHostAlloc(&data, static_cast<size_t>(bytes), cudaHostAllocDefault) != cudaSuccess) {
      (void)cudaGetLastError();  // clear it: the caller sees an allocation failure, not CUDA's
      throw c10::OutOfMemoryError(
          {__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
          "pinned host memory: cudaHostAlloc of " + std::to_string(bytes) + " bytes failed");
    }
    return at::from_blob(
        data, {bytes}, [](void* ptr) { cudaFreeHost(ptr); }, options);
  }
#else
  (void)pinned;
#endif
  return at::empty({bytes}, options);
}

#ifdef RAYLIGHT_HAVE_CUDA
struct TransferPool::CudaEvents {
  explicit CudaEvents(at::Device device, int slots)
      : stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())),
        filled(slots),
        released(slots) {}
  c10::cuda::CUDAStream stream;
  std::vector<at::cuda::CUDAEvent> filled, released;
};
#else
struct TransferPool::CudaEvents {};
#endif

TransferPool::TransferPool(int buffers, int64_t buffer_bytes, at::Device device, bool side_stream)
    : buffer_bytes_(buffer_bytes), device_(device), slots_(buffers) {
  for (Slot& slot : slots_) {
    slot.buffer = at::empty({buffer_bytes}, at::TensorOptions().dtype(at::kByte).device(device));
  }
#ifdef RAYLIGHT_HAVE_CUDA
  if (device.is_cuda() && side_stream) cuda_ = std::make_unique<CudaEvents>(device, buffers);
#else
  (void)side_stream;
#endif
}

TransferPool::~TransferPool() {
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) cuda_->stream.synchronize();
#endif
}

int TransferPool::Find(int block) const {
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].block == block && slots_[i].state != State::kEmpty) return static_cast<int>(i);
  }
  return -1;
}

int TransferPool::Victim() const {
  for (State wanted : {State::kEmpty, State::kReleased, State::kFilled}) {
    int best = -1;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].state != wanted) continue;
      if (best < 0 || slots_[i].last_use < slots_[best].last_use) best = static_cast<int>(i);
    }
    if (best >= 0) return best;
  }
  return -1;
}

absl::Status TransferPool::Fill(int block, absl::FunctionRef<absl::Status(at::Tensor&)> fill) {
  if (int held = Find(block); held >= 0) {
    // Still there from an earlier fill: read it again (a released buffer is read-only here, so
    // the compute that released it and the compute that reacquires it need no ordering).
    if (slots_[held].state == State::kReleased) slots_[held].state = State::kFilled;
    return absl::OkStatus();
  }
  const int victim = Victim();
  if (victim < 0) {
    return absl::FailedPreconditionError(absl::StrCat("weights: no buffer free for block ", block,
                                                      ": all ", slots_.size(), " are in use"));
  }
  Slot& slot = slots_[victim];
  slot.block = -1;
  slot.state = State::kEmpty;
  absl::Status status;
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) {
    // After the compute that read this buffer last; then the fill, on the fill stream.
    cuda_->released[victim].block(cuda_->stream);
    c10::cuda::CUDAStreamGuard guard(cuda_->stream);
    status = fill(slot.buffer);
    if (status.ok()) cuda_->filled[victim].record(cuda_->stream);
  } else {
    status = fill(slot.buffer);
  }
#else
  status = fill(slot.buffer);
#endif
  if (!status.ok()) return status;
  slot.block = block;
  slot.state = State::kFilled;
  slot.last_use = ++clock_;
  ++fills_;
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> TransferPool::Acquire(int block) {
  const int held = Find(block);
  if (held < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("weights: block ", block, " was acquired before it was fetched"));
  }
  Slot& slot = slots_[held];
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_ && slot.state == State::kFilled) {
    // An event never recorded (a buffer reused as it was) makes block() a no-op.
    cuda_->filled[held].block(c10::cuda::getCurrentCUDAStream(device_.index()));
  }
#endif
  slot.state = State::kAcquired;
  return slot.buffer;
}

void TransferPool::Release(int block) {
  const int held = Find(block);
  if (held < 0 || slots_[held].state != State::kAcquired) return;
  Slot& slot = slots_[held];
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) cuda_->released[held].record(c10::cuda::getCurrentCUDAStream(device_.index()));
#endif
  slot.state = State::kReleased;
  slot.last_use = ++clock_;
}

}  // namespace raylight::models
