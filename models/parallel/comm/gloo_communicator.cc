#include "models/parallel/comm/gloo_communicator.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include <algorithm>
#include <numeric>
#include <thread>
#include <torch/csrc/distributed/c10d/Backend.hpp>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/parallel/comm/abortable_store.h"
#include "models/parallel/comm/c10d_store_adapter.h"
#include "models/parallel/comm/comm_errors.h"
#include "models/parallel/comm/gloo_backend_factory.h"
#include "models/parallel/comm/split_plan.h"
#include "runtime/common/prefix_store.h"
#include "runtime/common/status_macros.h"

namespace raylight::comm {
namespace {

c10d::ReduceOp ToC10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return c10d::ReduceOp(c10d::ReduceOp::SUM);
    case ReduceOp::kMax:
      return c10d::ReduceOp(c10d::ReduceOp::MAX);
    case ReduceOp::kMin:
      return c10d::ReduceOp(c10d::ReduceOp::MIN);
  }
  return c10d::ReduceOp(c10d::ReduceOp::SUM);
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(int rank, int size, Store& base_store, std::unique_ptr<AbortableStore> abortable,
                   std::unique_ptr<PrefixStore> store, c10::intrusive_ptr<c10d::Store> c10d_store,
                   c10::intrusive_ptr<c10d::Backend> backend, GlooOptions options)
      : Communicator(rank, size, options.abort_signal),
        base_store_(base_store),
        abortable_(std::move(abortable)),
        store_(std::move(store)),
        c10d_store_(std::move(c10d_store)),
        backend_(std::move(backend)),
        options_(std::move(options)) {}

  ~GlooCommunicator() override {
    if (!abort_signal()->fired()) return;
    // After an abort a Gloo thread may still be blocked in the abandoned collective until the
    // peers close their connections or Gloo's own timeout passes, and ProcessGroupGloo's
    // destructor joins it: it is released off this thread, which the worker needs now.
    std::thread([backend = std::move(backend_), c10d_store = std::move(c10d_store_),
                 store = std::move(store_), abortable = std::move(abortable_)]() mutable {
      backend.reset();
      c10d_store.reset();
      store.reset();
      abortable.reset();
    }).detach();
  }

  absl::string_view backend_name() const override { return "gloo"; }
  at::Device device() const override { return at::Device(at::kCPU); }
  absl::Status Synchronize() override { return absl::OkStatus(); }

 protected:
  absl::Status DoAllToAll(const at::Tensor& in, at::Tensor& out) override {
    at::Tensor input = in;
    std::vector<int64_t> equal_splits;  // empty: equal splits along dim 0
    return Wait("AllToAll", backend_->alltoall_base(out, input, equal_splits, equal_splits));
  }

  absl::Status DoAllGather(const at::Tensor& in, at::Tensor& out) override {
    at::Tensor input = in;
    return Wait("AllGather", backend_->_allgather_base(out, input));
  }

  absl::Status DoReduceScatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    c10d::ReduceScatterOptions options;
    options.reduceOp = ToC10d(op);
    at::Tensor input = in;
    return Wait("ReduceScatter", backend_->_reduce_scatter_base(out, input, options));
  }

  absl::Status DoAllReduce(at::Tensor& tensor, ReduceOp op) override {
    std::vector<at::Tensor> tensors = {tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = ToC10d(op);
    return Wait("AllReduce", backend_->allreduce(tensors, options));
  }

  absl::Status DoBroadcast(at::Tensor& tensor, int root) override {
    std::vector<at::Tensor> tensors = {tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    return Wait("Broadcast", backend_->broadcast(tensors, options));
  }

  absl::Status DoSendRecv(absl::Span<const P2POp> ops) override {
    // Gloo's send and recv are asynchronous: post them all, then wait, so rings cannot deadlock.
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (const P2POp& op : ops) {
      std::vector<at::Tensor> tensors = {op.tensor};
      works.push_back(op.kind == P2POp::Kind::kSend ? backend_->send(tensors, op.peer, kP2PTag)
                                                    : backend_->recv(tensors, op.peer, kP2PTag));
    }
    for (auto& work : works) RL_RETURN_IF_ERROR(Wait("SendRecv", work));
    return absl::OkStatus();
  }

  absl::Status DoBarrier() override {
    c10d::BarrierOptions options;
    options.timeout = options_.timeout;
    return Wait("Barrier", backend_->barrier(options));
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(int color, int key) override {
    RL_ASSIGN_OR_RETURN(SplitPlan plan, PlanSplit(*this, color, key));
    if (!plan.member) return std::unique_ptr<Communicator>();
    GlooOptions child = options_;
    child.group_name = absl::StrCat(options_.group_name, "/split", split_count_++, "/color", color);
    child.abort_signal = abort_signal();
    return CreateGlooCommunicator(base_store_, plan.new_rank, plan.new_size, child);
  }

  bool NativeReduction(at::ScalarType dtype) const override {
    // Gloo reduces these element types itself; fp8 goes through float32.
    switch (dtype) {
      case at::kFloat:
      case at::kHalf:
      case at::kBFloat16:
      case at::kInt:
      case at::kLong:
      case at::kByte:
        return true;
      default:
        return false;
    }
  }

 private:
  static constexpr int kP2PTag = 0;

  // Waits for `work` until it finishes, the timeout passes or the communicator is aborted.
  absl::Status Wait(absl::string_view op, const c10::intrusive_ptr<c10d::Work>& work) {
    return CatchAll(op, [&]() -> absl::Status {
      struct WaitState {
        absl::Mutex mu;
        bool done ABSL_GUARDED_BY(mu) = false;
        bool aborted ABSL_GUARDED_BY(mu) = false;
      };
      auto state = std::make_shared<WaitState>();
      // Collectives complete a future; sends and receives have none, but their abort() ends
      // their blocking wait.
      c10::intrusive_ptr<c10::ivalue::Future> future;
      try {
        future = work->getFuture();
      } catch (const std::exception&) {
      }
      const bool has_future = future != nullptr;
      const int64_t listener =
          abort_signal()->Subscribe([state, work, has_future](const absl::Status&) {
            absl::MutexLock lock(&state->mu);
            state->aborted = true;
            if (has_future) return;
            try {
              work->abort();
            } catch (const std::exception&) {
            }
          });
      absl::Cleanup unsubscribe = [&] { abort_signal()->Unsubscribe(listener); };
      auto aborted = [&] {
        absl::MutexLock lock(&state->mu);
        return state->aborted;
      };
      auto abort_status = [&] {
        return absl::AbortedError(absl::StrCat(op, " aborted: ", abort_signal()->why().message()));
      };
      const auto timed_out = [&] {
        return absl::DeadlineExceededError(
            absl::StrCat(op, " did not finish within ", options_.timeout.count(), " ms"));
      };
      if (!has_future) {
        bool finished = false;
        try {
          finished = work->wait(options_.timeout);
        } catch (const std::exception&) {
          if (aborted()) return abort_status();
          throw;
        }
        if (aborted()) return abort_status();
        return finished ? absl::OkStatus() : timed_out();
      }
      future->addCallback([state](c10::ivalue::Future&) {
        absl::MutexLock lock(&state->mu);
        state->done = true;
      });
      bool finished = false;
      {
        absl::MutexLock lock(&state->mu);
        auto ready = [&state]() ABSL_SHARED_LOCKS_REQUIRED(state->mu) {
          return state->done || state->aborted;
        };
        if (!state->mu.AwaitWithTimeout(absl::Condition(&ready),
                                        absl::FromChrono(options_.timeout))) {
          return timed_out();
        }
        finished = state->done;
      }
      // Outside the lock: the listener takes it under the signal's.
      if (!finished) return abort_status();
      work->wait();  // finished: throws the operation's own error, if it had one
      return absl::OkStatus();
    });
  }

  Store& base_store_;
  std::unique_ptr<AbortableStore> abortable_;   // base_store_ as the rendezvous sees it
  std::unique_ptr<PrefixStore> store_;          // the group's namespace in base_store_
  c10::intrusive_ptr<c10d::Store> c10d_store_;  // what Gloo rendezvoused through
  c10::intrusive_ptr<c10d::Backend> backend_;
  const GlooOptions options_;
  // Each Split gets its own rendezvous namespace; every rank splits in the same order.
  int split_count_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(Store& store, int rank,
                                                                     int size,
                                                                     const GlooOptions& options) {
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("Gloo communicator: rank ", rank, " is not in a group of size ", size));
  }
  GlooOptions own = options;
  if (own.abort_signal == nullptr) own.abort_signal = std::make_shared<AbortSignal>();
  // The rendezvous waits in slices, so that an abort ends it too.
  auto abortable = std::make_unique<AbortableStore>(store, own.abort_signal);
  auto prefix =
      std::make_unique<PrefixStore>(absl::StrCat("gloo/", options.group_name), *abortable);
  c10::intrusive_ptr<c10d::Store> adapter =
      c10::make_intrusive<C10dStoreAdapter>(*prefix, options.timeout);
  const std::string what = absl::StrCat("creating Gloo group '", options.group_name, "' (rank ",
                                        rank, " of ", size, ")");
  std::shared_ptr<AbortSignal> signal = own.abort_signal;
  absl::StatusOr<std::unique_ptr<Communicator>> made =
      CatchAll(what, [&]() -> absl::StatusOr<std::unique_ptr<Communicator>> {
        auto backend = CreateGlooBackend(adapter, rank, size, options.timeout, options.hostname);
        return std::unique_ptr<Communicator>(
            new GlooCommunicator(rank, size, store, std::move(abortable), std::move(prefix),
                                 adapter, std::move(backend), std::move(own)));
      });
  // An abort surfaces through c10d as a generic store error: say what it was.
  if (!made.ok() && signal->fired()) {
    return absl::AbortedError(absl::StrCat(what, ": aborted: ", signal->why().message()));
  }
  return made;
}

}  // namespace raylight::comm
