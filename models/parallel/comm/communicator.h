// Communicator: the collectives that parallel sampling is written against, on at::Tensors.
//
// One Communicator per process and group; `rank()` in [0, size()). Every method is collective
// (every rank of the group calls it, in the same order, with matching shapes) except SendRecv,
// which pairs with the peers' matching calls. Backends:
//   - NCCL (nccl_communicator.h): one process per GPU; operations are enqueued on the caller's
//     current CUDA stream and return before they finish; Synchronize() waits for them.
//   - Gloo (gloo_communicator.h), through libtorch's c10d::ProcessGroupGloo, for CPU tensors;
//     operations have finished when they return.
// Both are created from a raylight::Store (rendezvous) and both fail with a Status, never hang:
// every operation is bounded by the communicator's timeout, after which the communicator is
// aborted and every later call returns the error. Abort() does the same at once, from any thread
// (a peer is known to be gone: waiting for the timeout would only hold the group).
//
// Dtypes: f32, f16, bf16, fp8 e4m3fn, i32, i64, u8. Data movement (all-to-all, all-gather,
// broadcast, send/recv) copies bytes, so every dtype moves bit-exactly. Reductions run in the
// dtype where the backend can; fp8 is reduced in f32 and rounded once at the end.
//
// Not thread-safe: one thread issues a communicator's operations (as with NCCL communicators).
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "models/parallel/comm/abort_signal.h"

namespace raylight::comm {

// Default bound on one collective (and on rendezvous). Generous: the first NCCL call on a fresh
// communicator connects its peers.
inline constexpr std::chrono::milliseconds kDefaultCommTimeout = std::chrono::seconds(120);

enum class ReduceOp { kSum, kMax, kMin };
absl::string_view ReduceOpName(ReduceOp op);

// One half of a point-to-point transfer, for batched SendRecv.
struct P2POp {
  enum class Kind { kSend, kRecv };
  Kind kind;
  at::Tensor tensor;  // sent from, or received into (contiguous, on the communicator's device)
  int peer;           // rank in this communicator
};

class Communicator {
 public:
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  virtual ~Communicator() = default;

  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual absl::string_view backend_name() const = 0;
  // The device every tensor passed in must live on.
  virtual at::Device device() const = 0;

  // Splits `input` into size() equal chunks along `scatter_dim`, sends chunk j to rank j, and
  // concatenates the chunks received from ranks 0..size()-1 along `gather_dim`.
  // E.g. Ulysses: [B, S/P, H, D] with scatter_dim 2, gather_dim 1 -> [B, S, H/P, D].
  absl::StatusOr<at::Tensor> AllToAll(const at::Tensor& input, int64_t scatter_dim,
                                      int64_t gather_dim);
  // The exchange alone, on packed buffers: `input` holds size() equal chunks along its first
  // dimension (chunk j for rank j), `output` (same shape and dtype, not reallocated) receives
  // chunk j from rank j. Both contiguous. For callers that pack and unpack in their own layout.
  absl::Status AllToAllInto(const at::Tensor& input, at::Tensor& output);
  // At least `bytes` of device memory (kByte, contiguous) for AllToAllInto's buffers: on NCCL it
  // is registered with every rank as a symmetric window, so that an AllToAllInto whose input and
  // output both lie in it, at the same offsets on every rank, runs on the copy engines and leaves
  // every SM to the compute it overlaps; elsewhere it is plain memory. Collective: every rank asks
  // for the same sizes in the same order. Kept until a larger one is asked for, which waits for
  // the device and replaces it (views of the old one must be gone by then).
  absl::StatusOr<at::Tensor> Workspace(int64_t bytes);
  // One-sided exchange for layouts an all-to-all cannot express without packing copies (Ulysses'
  // head chunks straight from the projection, straight into the rows attention reads):
  //
  // PeerWorkspace: at least `bytes` of device memory (kByte, contiguous, same size on every rank)
  // that the other ranks write into with PutToPeer. Collective, like Workspace; growing it waits
  // for every rank's device. On NCCL it is mapped into every peer's address space (CUDA IPC) and
  // puts are copy-engine copies over NVLink or PCIe, so no SM is taken from the compute they
  // overlap; where the ranks cannot map each other's memory (another host, no peer access) it is
  // Unimplemented on every rank (the communicator stays usable) and the caller uses
  // AllToAllInto. Elsewhere (Gloo) puts travel through SendRecv at the next fence.
  absl::StatusOr<at::Tensor> PeerWorkspace(int64_t bytes);
  // Enqueues a copy of `source` (on device(), any strides) into rank `peer`'s PeerWorkspace at
  // the place `target` has in this rank's: `target` is a view of this rank's PeerWorkspace with
  // source's shape and dtype, and the copy lands at the same byte offset with the same strides on
  // the peer. Not to self (the caller copies locally). It has landed by the next PeerFence.
  absl::Status PutToPeer(const at::Tensor& source, const at::Tensor& target, int peer);
  // Collective, in stream order on every rank: the puts every rank issued before its fence have
  // landed before anything issued after the fence runs, and no rank's later puts start before
  // every rank has reached it. An exchange is therefore fence (each rank's workspace may now be
  // written: what read it earlier in stream order is done), puts, fence (everything arrived).
  absl::Status PeerFence();
  // Concatenates every rank's `input` (same shape on every rank) along `dim`, in rank order.
  absl::StatusOr<at::Tensor> AllGather(const at::Tensor& input, int64_t dim);
  // The same into `output` (contiguous, size() times input's bytes, rank-major), which is not
  // reallocated: FSDP gathers into a fixed pool of buffers.
  absl::Status AllGatherInto(const at::Tensor& input, at::Tensor& output);
  // Reduces `input` (same shape on every rank) across ranks and returns this rank's chunk of the
  // result: chunk rank() of size() equal chunks along `dim`.
  absl::StatusOr<at::Tensor> ReduceScatter(const at::Tensor& input, int64_t dim,
                                           ReduceOp op = ReduceOp::kSum);
  // Reduces `tensor` across ranks, in place.
  absl::Status AllReduce(at::Tensor& tensor, ReduceOp op = ReduceOp::kSum);
  // Copies `root`'s `tensor` into every rank's `tensor`, in place.
  absl::Status Broadcast(at::Tensor& tensor, int root);
  // Runs the sends and receives together, so that a ring (send to next, receive from previous)
  // cannot deadlock.
  absl::Status SendRecv(absl::Span<const P2POp> ops);
  // Returns when every rank has reached the barrier (and, on NCCL, all earlier work finished).
  absl::Status Barrier();
  // Collective: the ranks that pass the same `color` form a new communicator, ranked by `key`
  // (ties by rank). A negative color takes no part and gets nullptr.
  absl::StatusOr<std::unique_ptr<Communicator>> Split(int color, int key);
  // Waits until every operation issued so far has finished, within the timeout.
  virtual absl::Status Synchronize() = 0;

  // Makes every operation in flight on this communicator and on every communicator split from
  // it (they share one AbortSignal) fail now with ABORTED and `why`, and every later one fail at
  // once. The one method meant for another thread than the issuing one. The communicator is not
  // usable afterwards, as after a timeout: the group is formed again.
  void Abort(absl::Status why) { abort_signal_->Fire(std::move(why)); }
  const std::shared_ptr<AbortSignal>& abort_signal() const { return abort_signal_; }

 protected:
  // `signal`: the creator's (the run that may abort it) or the parent's for a Split; null makes
  // one of its own.
  Communicator(int rank, int size, std::shared_ptr<AbortSignal> signal = nullptr)
      : rank_(rank),
        size_(size),
        abort_signal_(signal != nullptr ? std::move(signal) : std::make_shared<AbortSignal>()) {}

  // What the backends implement. Inputs are validated, contiguous and on device(). Movement
  // operations receive flat byte (kByte) tensors; reductions receive flat tensors of a dtype for
  // which NativeReduction() is true.
  //
  // `in` holds size() equal chunks, chunk j for rank j; `out` receives chunk j from rank j.
  virtual absl::Status DoAllToAll(const at::Tensor& in, at::Tensor& out) = 0;
  // `out` is size() times `in`, rank-major.
  virtual absl::Status DoAllGather(const at::Tensor& in, at::Tensor& out) = 0;
  // `in` is size() chunks of `out`'s size; `out` receives the reduction of chunk rank().
  virtual absl::Status DoReduceScatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) = 0;
  virtual absl::Status DoAllReduce(at::Tensor& tensor, ReduceOp op) = 0;
  virtual absl::Status DoBroadcast(at::Tensor& tensor, int root) = 0;
  virtual absl::Status DoSendRecv(absl::Span<const P2POp> ops) = 0;
  virtual absl::Status DoBarrier() = 0;
  virtual absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key) = 0;
  // Returns memory of at least `bytes` for Workspace; the default is plain device memory.
  virtual absl::StatusOr<at::Tensor> DoWorkspace(int64_t bytes);
  // PeerWorkspace and its puts and fences. The defaults run on any backend: plain memory, puts
  // kept until the fence, which sends them to their ranks (SendRecv) and applies what arrives.
  // `target_offset` is the byte offset of the put's target in the PeerWorkspace, `target` the
  // target itself (a view of this rank's workspace).
  virtual absl::StatusOr<at::Tensor> DoPeerWorkspace(int64_t bytes);
  virtual absl::Status DoPutToPeer(const at::Tensor& source, const at::Tensor& target,
                                   int64_t target_offset, int peer);
  virtual absl::Status DoPeerFence();
  // Whether DoAllReduce / DoReduceScatter accept `dtype` as it is; otherwise the caller reduces
  // a float32 copy.
  virtual bool NativeReduction(at::ScalarType dtype) const = 0;

 private:
  // Both defined, supported, on device() and contiguous: the caller-owned buffers of the *Into
  // operations.
  absl::Status CheckBuffers(absl::string_view op, const at::Tensor& input,
                            const at::Tensor& output) const;
  absl::Status CheckTensor(absl::string_view op, absl::string_view what,
                           const at::Tensor& tensor) const;
  // Runs a backend operation: refuses it when an earlier one broke the communicator, turns
  // exceptions into a Status, and remembers a failure (a timeout, a lost peer) so that every
  // later call reports it instead of hanging on a half-dead group.
  template <typename Fn>
  auto Run(absl::string_view op, Fn&& fn) -> decltype(fn());

  const int rank_;
  const int size_;
  const std::shared_ptr<AbortSignal> abort_signal_;
  absl::Status failure_;
  at::Tensor workspace_;  // the default DoWorkspace's memory
  // The default peer exchange: its memory and the puts waiting for the next fence.
  struct PendingPut {
    int peer;
    at::Tensor bytes;             // the source, copied when put (kByte)
    std::vector<int64_t> layout;  // byte offset, dims, the target's byte sizes and strides
  };
  at::Tensor peer_workspace_;
  std::vector<PendingPut> pending_puts_;
  at::Tensor peer_memory_;  // what PeerWorkspace last handed out (any backend): puts' bounds
};

}  // namespace raylight::comm
