#include "models/parallel/comm/gloo_communicator.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <torch/csrc/distributed/c10d/Backend.hpp>

#include "absl/strings/str_cat.h"
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
  GlooCommunicator(int rank, int size, Store& base_store, std::unique_ptr<PrefixStore> store,
                   c10::intrusive_ptr<c10d::Store> c10d_store,
                   c10::intrusive_ptr<c10d::Backend> backend, GlooOptions options)
      : Communicator(rank, size),
        base_store_(base_store),
        store_(std::move(store)),
        c10d_store_(std::move(c10d_store)),
        backend_(std::move(backend)),
        options_(std::move(options)) {}

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

  absl::Status Wait(absl::string_view op, const c10::intrusive_ptr<c10d::Work>& work) {
    return CatchAll(op, [&]() -> absl::Status {
      if (!work->wait(options_.timeout)) {
        return absl::DeadlineExceededError(
            absl::StrCat(op, " did not finish within ", options_.timeout.count(), " ms"));
      }
      return absl::OkStatus();
    });
  }

  Store& base_store_;
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
  auto prefix = std::make_unique<PrefixStore>(absl::StrCat("gloo/", options.group_name), store);
  c10::intrusive_ptr<c10d::Store> adapter =
      c10::make_intrusive<C10dStoreAdapter>(*prefix, options.timeout);
  return CatchAll(
      absl::StrCat("creating Gloo group '", options.group_name, "' (rank ", rank, " of ", size,
                   ")"),
      [&]() -> absl::StatusOr<std::unique_ptr<Communicator>> {
        auto backend = CreateGlooBackend(adapter, rank, size, options.timeout, options.hostname);
        return std::unique_ptr<Communicator>(new GlooCommunicator(
            rank, size, store, std::move(prefix), adapter, std::move(backend), options));
      });
}

}  // namespace raylight::comm
