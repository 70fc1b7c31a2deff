#include "models/core/side_stream.h"

#include <deque>

#ifdef RAYLIGHT_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace raylight::models {

#ifdef RAYLIGHT_HAVE_CUDA
struct SideStream::Cuda {
  explicit Cuda(c10::DeviceIndex device)
      : device(device), side(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device)) {}

  c10::cuda::CUDAStream compute() const { return c10::cuda::getCurrentCUDAStream(device); }

  c10::DeviceIndex device;
  c10::cuda::CUDAStream side;
  std::deque<at::cuda::CUDAEvent> marks;  // deque: events do not move once recorded
};
#else
struct SideStream::Cuda {};
#endif

SideStream::SideStream(const at::Tensor& like, bool overlap) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (overlap && like.is_cuda()) cuda_ = std::make_unique<Cuda>(like.device().index());
#endif
}

SideStream::~SideStream() {
  try {
    Join();
  } catch (const c10::Error&) {
    // A failing device fails the next operation on the compute stream as well.
  }
}

void SideStream::Run(absl::FunctionRef<void()> work) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) {
    at::cuda::CUDAEvent ready;
    ready.record(cuda_->compute());
    ready.block(cuda_->side);
    c10::cuda::CUDAStreamGuard guard(cuda_->side);
    work();
    return;
  }
#endif
  work();
}

void SideStream::Keep(const at::Tensor& tensor) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) tensor.record_stream(cuda_->side);
#endif
}

int SideStream::Mark() {
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) cuda_->marks.emplace_back().record(cuda_->side);
#endif
  return marks_++;
}

void SideStream::Wait(int mark) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) cuda_->marks.at(mark).block(cuda_->compute());
#endif
}

void SideStream::Join() {
#ifdef RAYLIGHT_HAVE_CUDA
  if (cuda_) {
    at::cuda::CUDAEvent done;
    done.record(cuda_->side);
    done.block(cuda_->compute());
  }
#endif
}

}  // namespace raylight::models
