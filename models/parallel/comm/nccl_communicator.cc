#include "models/parallel/comm/nccl_communicator.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <deque>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/parallel/comm/abortable_store.h"
#include "models/parallel/comm/comm_errors.h"
#include "models/parallel/comm/peer_memory.h"
#include "models/parallel/comm/split_plan.h"
#include "runtime/common/prefix_store.h"
#include "runtime/common/round_up.h"
#include "runtime/common/status_macros.h"

namespace raylight::comm {
namespace {

using Clock = std::chrono::steady_clock;

// How often the watchdog looks at the operations in flight.
constexpr auto kWatchdogPoll = absl::Milliseconds(1);

// The NCCL type a reduction of `dtype` runs in; none for the dtypes NCCL cannot reduce natively
// (fp8: NativeReduction() routes it through float32 before it gets here).
std::optional<ncclDataType_t> ToNcclType(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return ncclFloat32;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kByte:
      return ncclUint8;
    default:
      return std::nullopt;
  }
}

absl::Status NoNativeReduction(absl::string_view op, at::ScalarType dtype) {
  return absl::InvalidArgumentError(
      absl::StrCat(op, ": NCCL does not reduce ", c10::toString(dtype), " natively"));
}

ncclRedOp_t ToNccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

absl::Status NcclError(absl::string_view op, ncclResult_t result, ncclComm_t comm) {
  std::string text = absl::StrCat(op, ": NCCL error '", ncclGetErrorString(result), "'");
  if (const char* last = ncclGetLastError(comm); last != nullptr && last[0] != '\0') {
    absl::StrAppend(&text, ": ", last);
  }
  if (result == ncclRemoteError || result == ncclSystemError) {
    return absl::UnavailableError(text);
  }
  return absl::InternalError(text);
}

absl::StatusOr<std::unique_ptr<Communicator>> InitCommunicator(const std::string& what,
                                                               const ncclUniqueId& id, int rank,
                                                               int size, int device_index,
                                                               const NcclOptions& options);

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int rank, int size, int device, ncclComm_t comm, NcclOptions options)
      : Communicator(rank, size, options.abort_signal),
        device_(device),
        options_(std::move(options)),
        comm_(comm) {
    watchdog_ = std::thread([this] { WatchdogLoop(); });
    // ncclCommAbort from the aborting thread: it also ends kernels waiting for a lost peer.
    abort_listener_ = abort_signal()->Subscribe([this](const absl::Status& why) {
      absl::MutexLock lock(&mu_);
      c10::cuda::CUDAGuard guard(device_);
      AbortLocked(absl::AbortedError(absl::StrCat("aborted: ", why.message())));
    });
  }

  ~NcclCommunicator() override {
    abort_signal()->Unsubscribe(abort_listener_);
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    watchdog_.join();
    absl::MutexLock lock(&mu_);
    c10::cuda::CUDAGuard guard(device_);
    if (comm_ != nullptr) {
      const auto deadline = Clock::now() + options_.timeout;
      while (!RetireLocked() && Clock::now() < deadline) std::this_thread::yield();
      // RetireLocked aborts the communicator (and clears comm_) when an operation overran.
      if (comm_ != nullptr) {
        if (pending_.empty()) {
          ReleaseWindowLocked();
          ncclCommDestroy(comm_);
        } else {
          ncclCommAbort(comm_);
        }
        comm_ = nullptr;
      }
    }
    ReleaseWindowLocked();  // after an abort: the memory only
    peer_memory_.reset();
    if (ce_stream_ != nullptr) {
      cudaStreamDestroy(ce_stream_);
      cudaEventDestroy(ce_ready_);
      cudaEventDestroy(ce_done_);
    }
    for (auto& pending : pending_) cudaEventDestroy(pending.event);
    for (cudaEvent_t event : free_events_) cudaEventDestroy(event);
  }

  absl::string_view backend_name() const override { return "nccl"; }
  at::Device device() const override { return at::Device(at::kCUDA, device_); }

  absl::Status Synchronize() override {
    const auto deadline = Clock::now() + 2 * options_.timeout;
    absl::MutexLock lock(&mu_);
    while (true) {
      if (!error_.ok()) return error_;
      if (RetireLocked()) return absl::OkStatus();
      // The watchdog aborts an operation past its timeout, which ends this wait with its error;
      // the deadline only guards against the abort itself hanging.
      if (Clock::now() > deadline) {
        return absl::DeadlineExceededError("Synchronize: NCCL operations did not finish");
      }
      mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Microseconds(20));
    }
  }

 protected:
  absl::Status DoAllToAll(const at::Tensor& in, at::Tensor& out) override {
    const size_t chunk = static_cast<size_t>(in.numel()) / size();
    const char* send = static_cast<const char*>(in.data_ptr());
    char* recv = static_cast<char*>(out.data_ptr());
    if (InWindow(in) && InWindow(out)) {
      // Both in the symmetric window: one ncclAlltoAll, outside any group (NCCL takes its
      // copy-engine path only there). The copy engines refuse the legacy default stream
      // ('invalid argument'): from there the exchange runs on a stream of ours, ordered after
      // the caller's work and before what the caller queues next.
      return Enqueue("AllToAll", [&](ncclComm_t comm, cudaStream_t stream) -> ncclResult_t {
        if (stream != nullptr) return ncclAlltoAll(send, recv, chunk, ncclUint8, comm, stream);
        if (cudaEventRecord(ce_ready_, stream) != cudaSuccess ||
            cudaStreamWaitEvent(ce_stream_, ce_ready_, 0) != cudaSuccess) {
          return ncclUnhandledCudaError;
        }
        const ncclResult_t result = ncclAlltoAll(send, recv, chunk, ncclUint8, comm, ce_stream_);
        if (cudaEventRecord(ce_done_, ce_stream_) != cudaSuccess ||
            cudaStreamWaitEvent(stream, ce_done_, 0) != cudaSuccess) {
          return ncclUnhandledCudaError;
        }
        return result;
      });
    }
    return Enqueue("AllToAll", [&](ncclComm_t comm, cudaStream_t stream) {
      ncclGroupStart();
      for (int peer = 0; peer < size(); ++peer) {
        ncclSend(send + peer * chunk, chunk, ncclUint8, peer, comm, stream);
        ncclRecv(recv + peer * chunk, chunk, ncclUint8, peer, comm, stream);
      }
      return ncclGroupEnd();
    });
  }

  absl::Status DoAllGather(const at::Tensor& in, at::Tensor& out) override {
    return Enqueue("AllGather", [&](ncclComm_t comm, cudaStream_t stream) {
      return ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), ncclUint8, comm, stream);
    });
  }

  absl::Status DoReduceScatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    const std::optional<ncclDataType_t> type = ToNcclType(in.scalar_type());
    if (!type) return NoNativeReduction("ReduceScatter", in.scalar_type());
    return Enqueue("ReduceScatter", [&](ncclComm_t comm, cudaStream_t stream) {
      return ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(), *type, ToNccl(op), comm,
                               stream);
    });
  }

  absl::Status DoAllReduce(at::Tensor& tensor, ReduceOp op) override {
    const std::optional<ncclDataType_t> type = ToNcclType(tensor.scalar_type());
    if (!type) return NoNativeReduction("AllReduce", tensor.scalar_type());
    return Enqueue("AllReduce", [&](ncclComm_t comm, cudaStream_t stream) {
      return ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), *type, ToNccl(op),
                           comm, stream);
    });
  }

  absl::Status DoBroadcast(at::Tensor& tensor, int root) override {
    return Enqueue("Broadcast", [&](ncclComm_t comm, cudaStream_t stream) {
      return ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), ncclUint8, root,
                           comm, stream);
    });
  }

  absl::Status DoSendRecv(absl::Span<const P2POp> ops) override {
    return Enqueue("SendRecv", [&](ncclComm_t comm, cudaStream_t stream) {
      ncclGroupStart();
      for (const P2POp& op : ops) {
        if (op.kind == P2POp::Kind::kSend) {
          ncclSend(op.tensor.data_ptr(), op.tensor.numel(), ncclUint8, op.peer, comm, stream);
        } else {
          ncclRecv(op.tensor.data_ptr(), op.tensor.numel(), ncclUint8, op.peer, comm, stream);
        }
      }
      return ncclGroupEnd();
    });
  }

  absl::Status DoBarrier() override {
    c10::cuda::CUDAGuard guard(device_);
    at::Tensor token = at::ones({1}, at::TensorOptions().device(device()).dtype(at::kFloat));
    RL_RETURN_IF_ERROR(DoAllReduce(token, ReduceOp::kSum));
    return Synchronize();
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key) override {
    // Not ncclCommSplit: on a non-blocking parent it left the parent "in progress" and handed
    // back no child (seen with NCCL 2.28). Instead each new group's leader draws a unique id,
    // the ids travel over this communicator, and the members initialise a fresh communicator.
    RL_ASSIGN_OR_RETURN(SplitPlan plan, PlanSplit(*this, color, key));
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (plan.member && plan.new_rank == 0) {
      if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess)
        return NcclError("Split", r, nullptr);
    }
    at::Tensor mine =
        at::from_blob(&id, {static_cast<int64_t>(sizeof(id))}, at::kByte).clone().to(device());
    RL_ASSIGN_OR_RETURN(at::Tensor ids, AllGather(mine, 0));
    RL_RETURN_IF_ERROR(Synchronize());
    ids = ids.cpu();
    if (!plan.member) return std::unique_ptr<Communicator>();
    std::memcpy(&id, ids.data_ptr<uint8_t>() + plan.leader * sizeof(id), sizeof(id));
    return InitCommunicator(
        absl::StrCat("Split of NCCL group '", options_.group_name, "' (color ", color, ")"), id,
        plan.new_rank, plan.new_size, device_, options_);
  }

  // Memory the peers map (CUDA IPC) and write with copy-engine copies (peer_memory.h). Growing
  // waits for every rank's device: no put into the old memory may still be in flight.
  absl::StatusOr<at::Tensor> DoPeerWorkspace(int64_t bytes) override {
    {
      absl::MutexLock lock(&mu_);
      if (peer_memory_ != nullptr && peer_memory_->bytes() >= bytes) return peer_tensor_;
    }
    c10::cuda::CUDAGuard guard(device_);
    if (!peer_capable_.has_value()) {
      RL_ASSIGN_OR_RETURN(peer_capable_, ProbePeerMapping());
    }
    if (!*peer_capable_) {
      return absl::UnimplementedError(
          "PeerWorkspace: the ranks cannot map each other's memory (another host, or no peer "
          "access between their GPUs)");
    }
    bool replacing;
    {
      absl::MutexLock lock(&mu_);
      replacing = peer_memory_ != nullptr;
    }
    if (replacing) {
      c10::cuda::device_synchronize();
      RL_RETURN_IF_ERROR(DoBarrier());
      absl::MutexLock lock(&mu_);
      peer_tensor_ = at::Tensor();
      peer_memory_.reset();
    }
    // Rounded to 2 MiB, the granularity IPC maps at.
    constexpr int64_t kGranule = 2 << 20;
    const int64_t size = RoundUp(bytes, kGranule);
    auto exchange = [&](const std::vector<uint8_t>& mine) -> absl::StatusOr<std::vector<uint8_t>> {
      return GatherBytes(mine);
    };
    RL_ASSIGN_OR_RETURN(std::unique_ptr<PeerMemory> memory,
                        PeerMemory::Create(size, rank(), this->size(), device_, exchange));
    absl::MutexLock lock(&mu_);
    peer_memory_ = std::move(memory);
    peer_tensor_ = at::from_blob(
        peer_memory_->data(), {size}, [](void*) {},
        at::TensorOptions().dtype(at::kByte).device(device()));
    return peer_tensor_;
  }

  absl::Status DoPutToPeer(const at::Tensor& source, const at::Tensor& target,
                           int64_t target_offset, int peer) override {
    return EnqueueCuda("PutToPeer", [&](cudaStream_t stream) {
      return peer_memory_->Put(source.data_ptr(), source.sizes(), source.strides(),
                               target.strides(), source.element_size(), target_offset, peer,
                               stream);
    });
  }

  absl::Status DoPeerFence() override {
    return EnqueueCuda("PeerFence", [&](cudaStream_t stream) {
      return peer_memory_ == nullptr ? absl::InvalidArgumentError("PeerFence: no PeerWorkspace yet")
                                     : peer_memory_->Fence(stream);
    });
  }

  bool NativeReduction(at::ScalarType dtype) const override {
    return dtype != at::kFloat8_e4m3fn;  // fp8 is reduced through float32
  }

  // Memory from ncclMemAlloc registered as a symmetric window (a collective call). Growing waits
  // for the device, since operations in flight may still use the old window.
  absl::StatusOr<at::Tensor> DoWorkspace(int64_t bytes) override {
    absl::MutexLock lock(&mu_);
    RL_RETURN_IF_ERROR(UsableLocked("Workspace"));
    if (window_bytes_ >= bytes) return window_tensor_;
    c10::cuda::CUDAGuard guard(device_);
    c10::cuda::device_synchronize();
    ReleaseWindowLocked();
    // Rounded up to the window alignment NCCL requires.
    const int64_t size = RoundUp(bytes, NCCL_WIN_REQUIRED_ALIGNMENT);
    if (ce_stream_ == nullptr &&
        (cudaStreamCreateWithFlags(&ce_stream_, cudaStreamNonBlocking) != cudaSuccess ||
         cudaEventCreateWithFlags(&ce_ready_, cudaEventDisableTiming) != cudaSuccess ||
         cudaEventCreateWithFlags(&ce_done_, cudaEventDisableTiming) != cudaSuccess)) {
      return absl::InternalError("Workspace: cannot create the copy-engine stream");
    }
    void* memory = nullptr;
    if (ncclResult_t r = ncclMemAlloc(&memory, size); r != ncclSuccess) {
      return NcclError("Workspace: ncclMemAlloc", r, comm_);
    }
    ncclWindow_t window = nullptr;
    if (ncclResult_t r =
            ncclCommWindowRegister(comm_, memory, size, &window, NCCL_WIN_COLL_SYMMETRIC);
        r != ncclSuccess) {
      ncclMemFree(memory);
      return NcclError("Workspace: ncclCommWindowRegister", r, comm_);
    }
    window_memory_ = memory;
    window_ = window;
    window_bytes_ = size;
    window_tensor_ = at::from_blob(
        memory, {size}, [](void*) {}, at::TensorOptions().dtype(at::kByte).device(device()));
    return window_tensor_;
  }

 private:
  struct Pending {
    cudaEvent_t event;
    Clock::time_point issued;
    absl::string_view op;
  };

  // Whether every rank can map every other rank's memory: each publishes its host and device,
  // decides for itself, and the group takes the minimum (all use peer memory or none does).
  absl::StatusOr<bool> ProbePeerMapping() {
    const PeerIdentity self = LocalPeerIdentity(device_);
    std::vector<uint8_t> mine(sizeof(self));
    std::memcpy(mine.data(), &self, sizeof(self));
    RL_ASSIGN_OR_RETURN(std::vector<uint8_t> all, GatherBytes(mine));
    std::vector<PeerIdentity> identities(size());
    std::memcpy(identities.data(), all.data(), all.size());
    at::Tensor can = at::full({1}, CanMapAll(self, identities, rank()) ? 1 : 0,
                              at::TensorOptions().dtype(at::kInt).device(device()));
    RL_RETURN_IF_ERROR(AllReduce(can, ReduceOp::kMin));
    return can.item<int>() == 1;
  }

  // Every rank's `mine` (equal sizes), in rank order, on the host.
  absl::StatusOr<std::vector<uint8_t>> GatherBytes(const std::vector<uint8_t>& mine) {
    at::Tensor local = at::from_blob(const_cast<uint8_t*>(mine.data()),
                                     {static_cast<int64_t>(mine.size())}, at::kByte)
                           .to(device());
    RL_ASSIGN_OR_RETURN(at::Tensor all, AllGather(local, 0));
    all = all.cpu();
    return std::vector<uint8_t>(all.data_ptr<uint8_t>(), all.data_ptr<uint8_t>() + all.numel());
  }

  bool InWindow(const at::Tensor& t) {
    absl::MutexLock lock(&mu_);
    const auto* begin = static_cast<const char*>(window_memory_);
    const auto* data = static_cast<const char*>(t.data_ptr());
    return begin != nullptr && data >= begin && data + t.nbytes() <= begin + window_bytes_;
  }

  void ReleaseWindowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (window_memory_ == nullptr) return;
    window_tensor_ = at::Tensor();
    if (comm_ != nullptr) ncclCommWindowDeregister(comm_, window_);
    ncclMemFree(window_memory_);
    window_memory_ = nullptr;
    window_ = nullptr;
    window_bytes_ = 0;
  }

  absl::Status UsableLocked(absl::string_view op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!error_.ok()) return error_;
    if (comm_ == nullptr) return absl::FailedPreconditionError(absl::StrCat(op, ": aborted"));
    return absl::OkStatus();
  }

  // Issues one operation on the current stream and hands it to the watchdog.
  absl::Status Enqueue(absl::string_view op,
                       absl::FunctionRef<ncclResult_t(ncclComm_t, cudaStream_t)> issue) {
    absl::MutexLock lock(&mu_);
    RL_RETURN_IF_ERROR(UsableLocked(op));
    c10::cuda::CUDAGuard guard(device_);
    cudaStream_t stream = at::cuda::getCurrentCUDAStream(device_).stream();
    if (ncclResult_t result = issue(comm_, stream); result != ncclSuccess) {
      return NcclError(op, result, comm_);
    }
    cudaEvent_t event;
    if (free_events_.empty()) {
      if (cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) {
        return absl::InternalError(absl::StrCat(op, ": cudaEventCreate failed"));
      }
    } else {
      event = free_events_.back();
      free_events_.pop_back();
    }
    if (cudaError_t e = cudaEventRecord(event, stream); e != cudaSuccess) {
      return absl::InternalError(absl::StrCat(op, ": cudaEventRecord: ", cudaGetErrorString(e)));
    }
    pending_.push_back({event, Clock::now(), op});
    return absl::OkStatus();
  }

  // Enqueue for work that is CUDA calls of ours rather than NCCL's: its own Status (a bad layout
  // stays InvalidArgument and leaves the communicator usable) instead of an NCCL error code.
  absl::Status EnqueueCuda(absl::string_view op,
                           absl::FunctionRef<absl::Status(cudaStream_t)> issue) {
    absl::Status status;
    const absl::Status enqueued = Enqueue(op, [&](ncclComm_t, cudaStream_t stream) {
      status = issue(stream);
      return status.ok() ? ncclSuccess : ncclInvalidUsage;
    });
    return status.ok() ? enqueued : status;
  }

  // Retires finished operations; true when none is left in flight. Aborts the communicator
  // when the oldest one has run past the timeout or NCCL reports an asynchronous error.
  bool RetireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!pending_.empty()) {
      Pending& oldest = pending_.front();
      cudaError_t state = cudaEventQuery(oldest.event);
      if (state == cudaSuccess) {
        free_events_.push_back(oldest.event);
        pending_.pop_front();
        continue;
      }
      if (state != cudaErrorNotReady) {
        AbortLocked(absl::InternalError(
            absl::StrCat(oldest.op, ": CUDA error: ", cudaGetErrorString(state))));
      } else if (Clock::now() - oldest.issued > options_.timeout) {
        AbortLocked(absl::DeadlineExceededError(absl::StrCat(
            oldest.op, " did not finish within ", options_.timeout.count(),
            " ms (a peer rank died or never called it); the communicator was aborted")));
      } else if (comm_ != nullptr) {
        ncclResult_t async = ncclSuccess;
        ncclCommGetAsyncError(comm_, &async);
        if (async != ncclSuccess && async != ncclInProgress) {
          AbortLocked(NcclError(oldest.op, async, comm_));
        }
      }
      return false;
    }
    return true;
  }

  void AbortLocked(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (error_.ok()) error_ = std::move(why);
    // Fences waiting on a dead peer would hold their streams forever.
    if (peer_memory_ != nullptr) peer_memory_->ReleaseWaits();
    if (comm_ != nullptr) {
      ncclCommAbort(comm_);  // also releases kernels stuck waiting for a peer
      comm_ = nullptr;
    }
    for (Pending& pending : pending_) cudaEventDestroy(pending.event);
    pending_.clear();
  }

  void WatchdogLoop() {
    c10::cuda::CUDAGuard guard(device_);
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !pending_.empty(); };
      if (pending_.empty()) {
        mu_.Await(absl::Condition(&wake));
      } else {
        mu_.AwaitWithTimeout(absl::Condition(&stop_), kWatchdogPoll);
      }
      if (!stop_) RetireLocked();
    }
  }

  const int device_;
  const NcclOptions options_;
  absl::Mutex mu_;
  ncclComm_t comm_ ABSL_GUARDED_BY(mu_);  // null once aborted
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<cudaEvent_t> free_events_ ABSL_GUARDED_BY(mu_);
  // The symmetric window Workspace hands out (none until asked for).
  void* window_memory_ ABSL_GUARDED_BY(mu_) = nullptr;
  ncclWindow_t window_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t window_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  at::Tensor window_tensor_ ABSL_GUARDED_BY(mu_);
  // Where window exchanges issued from the legacy default stream run (created with the window).
  cudaStream_t ce_stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  cudaEvent_t ce_ready_ ABSL_GUARDED_BY(mu_) = nullptr;
  cudaEvent_t ce_done_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // PeerWorkspace's memory (none until asked for) and whether the group can map it at all.
  std::unique_ptr<PeerMemory> peer_memory_ ABSL_GUARDED_BY(mu_);
  at::Tensor peer_tensor_ ABSL_GUARDED_BY(mu_);
  std::optional<bool> peer_capable_;
  std::thread watchdog_;
  int64_t abort_listener_ = 0;
};

// Builds the communicator from a shared unique id. The communicator is a blocking one: NCCL's
// non-blocking mode hands every operation to a background thread and cost ~60 us per call on
// the H200 pair (measured with comm_bench). Callers make sure every member is alive first (a
// store barrier, or the parent group's all-gather); should one die in the short window after
// that, init runs on its own thread and the caller gets DeadlineExceeded instead of a hang (the
// stuck thread is left behind: the process must be restarted, which the node agent does).
absl::StatusOr<std::unique_ptr<Communicator>> InitCommunicator(const std::string& what,
                                                               const ncclUniqueId& id, int rank,
                                                               int size, int device_index,
                                                               const NcclOptions& options) {
  struct InitResult {
    std::promise<void> done;
    ncclComm_t comm = nullptr;
    ncclResult_t result = ncclSuccess;
  };
  auto state = std::make_shared<InitResult>();
  std::future<void> done = state->done.get_future();
  const int policy = options.copy_engine_exchanges ? NCCL_CTA_POLICY_ZERO : NCCL_CTA_POLICY_DEFAULT;
  std::thread([state, id, rank, size, device_index, policy] {
    c10::cuda::CUDAGuard guard(device_index);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 1;
    config.CTAPolicy = policy;
    state->result = ncclCommInitRankConfig(&state->comm, size, id, rank, &config);
    state->done.set_value();
  }).detach();
  // Waited in slices: an abort (a peer will not come) ends the wait; the init thread is left
  // behind as after a timeout.
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  while (done.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    if (options.abort_signal != nullptr && options.abort_signal->fired()) {
      return absl::AbortedError(absl::StrCat(
          what, ": NCCL initialisation aborted: ", options.abort_signal->why().message()));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": NCCL initialisation did not complete within ",
                       options.timeout.count(), " ms: a rank stopped during rendezvous"));
    }
  }
  if (state->result != ncclSuccess) return NcclError(what, state->result, state->comm);
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(rank, size, device_index, state->comm, options));
}

}  // namespace

bool NcclAvailable() { return true; }

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(Store& store, int rank,
                                                                     int size, int device_index,
                                                                     const NcclOptions& given) {
  NcclOptions options = given;
  if (options.abort_signal == nullptr) options.abort_signal = std::make_shared<AbortSignal>();
  const std::string what =
      absl::StrCat("NCCL group '", options.group_name, "' (rank ", rank, " of ", size, ")");
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": rank out of range"));
  }
  const int devices = c10::cuda::device_count();
  if (device_index < 0 || device_index >= devices) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": device index ", device_index,
                                                   " but this process sees ", devices, " GPUs"));
  }
  AbortableStore abortable(store, options.abort_signal);  // an abort ends the waits below
  PrefixStore group_store(absl::StrCat("nccl/", options.group_name), abortable);
  ncclUniqueId id;
  if (rank == 0) {
    if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) return NcclError(what, r, nullptr);
    RL_RETURN_IF_ERROR(
        group_store.Set("unique_id", absl::string_view(reinterpret_cast<char*>(&id), sizeof(id))));
  } else {
    auto published = group_store.Get("unique_id", options.timeout);
    if (!published.ok()) {
      if (published.status().code() == absl::StatusCode::kAborted) return published.status();
      return absl::DeadlineExceededError(absl::StrCat(
          what, ": rank 0 did not publish the NCCL id: ", published.status().message()));
    }
    if (published->size() != sizeof(id)) {
      return absl::DataLossError(absl::StrCat(what, ": the published NCCL id has ",
                                              published->size(), " bytes, expected ", sizeof(id)));
    }
    std::memcpy(&id, published->data(), sizeof(id));
  }
  // Every rank announces itself and waits for all the others before entering NCCL, so that a
  // rank that never arrives is a store timeout, not a blocked ncclCommInitRank.
  RL_RETURN_IF_ERROR(group_store.Set(absl::StrCat("arrived/", rank), "1"));
  std::vector<std::string> arrivals;
  for (int r = 0; r < size; ++r) arrivals.push_back(absl::StrCat("arrived/", r));
  if (absl::Status all = group_store.Wait(arrivals, options.timeout); !all.ok()) {
    if (all.code() == absl::StatusCode::kAborted) return all;
    return absl::DeadlineExceededError(absl::StrCat(
        what, ": not every rank joined within ", options.timeout.count(), " ms: ", all.message()));
  }
  return InitCommunicator(what, id, rank, size, device_index, options);
}

}  // namespace raylight::comm
