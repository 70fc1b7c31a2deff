// A stream beside the compute stream for collectives that should overlap compute (Ulysses'
// all-to-alls, Ring's K/V passes). Communicators enqueue on the current stream, so work is run
// with the side stream current; CUDA events order the two streams: work queued here starts after
// everything the compute stream had queued when it was handed over, and the compute stream waits
// only at the marks it asks for. Nothing blocks the host.
//
// On CPU tensors (Gloo) there is no stream: work runs when handed over, and marks and waits are
// no-ops, so the same call sequence runs in order and the CPU tests exercise it.
//
// One thread uses a SideStream. Buffers the side stream uses are either kept (Keep) or freed
// only after a Wait or Join that covers that use; destroying a SideStream joins.
#pragma once

#include <ATen/ATen.h>

#include <memory>

#include "absl/functional/function_ref.h"

namespace raylight::models {

class SideStream {
 public:
  // A side stream on `like`'s device when it is a CUDA tensor and `overlap` is set; inline
  // execution otherwise (`overlap` false: the work runs on the compute stream, in order, which the
  // benchmarks use as the no-overlap baseline).
  explicit SideStream(const at::Tensor& like, bool overlap = true);
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  // Runs `work` with the side stream current, after the compute stream's work queued so far.
  void Run(absl::FunctionRef<void()> work);
  // `tensor`'s memory is not reused before the side stream's work queued so far is done, even
  // when the compute stream frees it earlier (the caching allocator's record_stream).
  void Keep(const at::Tensor& tensor);
  // A point on the side stream: the work queued there so far.
  int Mark();
  // The compute stream waits for `mark`'s work (not for work queued after it).
  void Wait(int mark);
  // The compute stream waits for everything queued on the side stream.
  void Join();

 private:
  struct Cuda;  // the stream and its events (kept out of this header)
  std::unique_ptr<Cuda> cuda_;
  int marks_ = 0;
};

}  // namespace raylight::models
