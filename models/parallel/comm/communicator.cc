#include "models/parallel/comm/communicator.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "models/parallel/comm/comm_errors.h"
#include "runtime/common/status_macros.h"

namespace raylight::comm {
namespace {

bool IsSupportedDtype(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
    case at::kHalf:
    case at::kBFloat16:
    case at::kFloat8_e4m3fn:
    case at::kInt:
    case at::kLong:
    case at::kByte:
      return true;
    default:
      return false;
  }
}

// A flat byte view of a contiguous tensor: what the movement operations transfer.
at::Tensor Bytes(const at::Tensor& t) { return t.reshape({-1}).view(at::kByte); }

// Moves chunk axis `dim` (split into `parts` equal parts) to the front: [parts, ...chunk].
at::Tensor PackChunks(const at::Tensor& t, int64_t dim, int64_t parts) {
  return t.unflatten(dim, {parts, t.size(dim) / parts}).movedim(dim, 0).contiguous();
}

// Inverse direction: [parts, ...chunk] concatenated along `dim` of the chunk.
at::Tensor ConcatChunks(const at::Tensor& packed, int64_t dim) {
  return packed.movedim(0, dim).flatten(dim, dim + 1).contiguous();
}

absl::StatusOr<int64_t> NormalizeDim(absl::string_view op, absl::string_view what, int64_t dim,
                                     int64_t ndim) {
  if (dim < -ndim || dim >= ndim) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": ", what, " ", dim, " is out of range for a tensor of ", ndim, " dimensions"));
  }
  return dim < 0 ? dim + ndim : dim;
}

absl::Status CheckDivisible(absl::string_view op, const at::Tensor& t, int64_t dim, int size) {
  if (t.size(dim) % size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": input dimension ", dim, " has size ", t.size(dim),
                     ", which does not divide by the group size ", size));
  }
  return absl::OkStatus();
}

}  // namespace

template <typename Fn>
auto Communicator::Run(absl::string_view op, Fn&& fn) -> decltype(fn()) {
  if (failure_.ok() && abort_signal_->fired()) {
    failure_ = absl::AbortedError(absl::StrCat("aborted: ", abort_signal_->why().message()));
  }
  if (!failure_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        op, ": this communicator failed earlier and cannot be used: ", failure_.message()));
  }
  auto result = CatchAll(op, std::forward<Fn>(fn));
  absl::Status status;
  if constexpr (std::is_same_v<decltype(result), absl::Status>) {
    status = result;
  } else {
    status = result.status();
  }
  // Bad arguments and what the backend cannot do (decided alike on every rank) leave the group
  // intact; anything else may have left peers mid-collective.
  if (!status.ok() && status.code() != absl::StatusCode::kInvalidArgument &&
      status.code() != absl::StatusCode::kUnimplemented) {
    failure_ = status;
  }
  return result;
}

absl::string_view ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

absl::Status Communicator::CheckTensor(absl::string_view op, absl::string_view what,
                                       const at::Tensor& tensor) const {
  if (!tensor.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", what, " is an undefined tensor"));
  }
  if (!IsSupportedDtype(tensor.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", what, " has dtype ", c10::toString(tensor.scalar_type()),
                     "; supported: Float, Half, BFloat16, Float8_e4m3fn, Int, Long, Byte"));
  }
  if (tensor.device() != device()) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", what, " is on ", tensor.device().str(),
                                                   ", this ", backend_name(),
                                                   " communicator works on ", device().str()));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> Communicator::AllToAll(const at::Tensor& input, int64_t scatter_dim,
                                                  int64_t gather_dim) {
  constexpr absl::string_view kOp = "AllToAll";
  RL_RETURN_IF_ERROR(CheckTensor(kOp, "input", input));
  RL_ASSIGN_OR_RETURN(scatter_dim, NormalizeDim(kOp, "scatter_dim", scatter_dim, input.dim()));
  RL_ASSIGN_OR_RETURN(gather_dim, NormalizeDim(kOp, "gather_dim", gather_dim, input.dim()));
  RL_RETURN_IF_ERROR(CheckDivisible(kOp, input, scatter_dim, size()));
  return Run(kOp, [&]() -> absl::StatusOr<at::Tensor> {
    at::Tensor send = PackChunks(input, scatter_dim, size());  // [P, ...chunk]
    at::Tensor recv = at::empty_like(send);
    at::Tensor recv_bytes = Bytes(recv);
    RL_RETURN_IF_ERROR(DoAllToAll(Bytes(send), recv_bytes));
    return ConcatChunks(recv, gather_dim);
  });
}

absl::Status Communicator::CheckBuffers(absl::string_view op, const at::Tensor& input,
                                        const at::Tensor& output) const {
  RL_RETURN_IF_ERROR(CheckTensor(op, "input", input));
  RL_RETURN_IF_ERROR(CheckTensor(op, "output", output));
  if (!input.is_contiguous() || !output.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": input and output must be contiguous"));
  }
  return absl::OkStatus();
}

absl::Status Communicator::AllToAllInto(const at::Tensor& input, at::Tensor& output) {
  constexpr absl::string_view kOp = "AllToAllInto";
  RL_RETURN_IF_ERROR(CheckBuffers(kOp, input, output));
  if (input.dim() == 0 || input.sizes() != output.sizes() ||
      input.scalar_type() != output.scalar_type()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": output must have input's shape and dtype"));
  }
  RL_RETURN_IF_ERROR(CheckDivisible(kOp, input, 0, size()));
  return Run(kOp, [&]() -> absl::Status {
    at::Tensor out_bytes = Bytes(output);
    return DoAllToAll(Bytes(input), out_bytes);
  });
}

absl::StatusOr<at::Tensor> Communicator::Workspace(int64_t bytes) {
  constexpr absl::string_view kOp = "Workspace";
  if (bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": bytes must be positive, got ", bytes));
  }
  return Run(kOp, [&]() -> absl::StatusOr<at::Tensor> {
    RL_ASSIGN_OR_RETURN(at::Tensor memory, DoWorkspace(bytes));
    return memory.narrow(0, 0, bytes);
  });
}

absl::StatusOr<at::Tensor> Communicator::DoWorkspace(int64_t bytes) {
  if (!workspace_.defined() || workspace_.numel() < bytes) {
    workspace_ = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(device()));
  }
  return workspace_;
}

absl::StatusOr<at::Tensor> Communicator::PeerWorkspace(int64_t bytes) {
  constexpr absl::string_view kOp = "PeerWorkspace";
  if (bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": bytes must be positive, got ", bytes));
  }
  return Run(kOp, [&]() -> absl::StatusOr<at::Tensor> {
    RL_ASSIGN_OR_RETURN(peer_memory_, DoPeerWorkspace(bytes));
    return peer_memory_.narrow(0, 0, bytes);
  });
}

absl::Status Communicator::PutToPeer(const at::Tensor& source, const at::Tensor& target, int peer) {
  constexpr absl::string_view kOp = "PutToPeer";
  RL_RETURN_IF_ERROR(CheckTensor(kOp, "source", source));
  RL_RETURN_IF_ERROR(CheckTensor(kOp, "target", target));
  if (peer < 0 || peer >= size() || peer == rank()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": peer ", peer, " is not another rank of a group of ", size()));
  }
  if (source.sizes() != target.sizes() || source.scalar_type() != target.scalar_type()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": target must have source's shape and dtype"));
  }
  if (!peer_memory_.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": no PeerWorkspace yet"));
  }
  // Where the target's bytes lie in this rank's workspace (its lowest and highest byte).
  const auto* base = static_cast<const char*>(peer_memory_.data_ptr());
  const int64_t offset = static_cast<const char*>(target.data_ptr()) - base;
  int64_t last = 0;
  for (int64_t d = 0; d < target.dim(); ++d) {
    if (target.stride(d) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(kOp, ": target has a negative stride"));
    }
    last += (target.size(d) - 1) * target.stride(d);
  }
  const int64_t end = offset + (last + 1) * target.element_size();
  if (offset < 0 || end > peer_memory_.numel()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": target is not a view of this rank's PeerWorkspace"));
  }
  if (source.numel() == 0) return absl::OkStatus();
  return Run(kOp, [&] { return DoPutToPeer(source, target, offset, peer); });
}

absl::Status Communicator::PeerFence() {
  return Run("PeerFence", [&] { return DoPeerFence(); });
}

absl::StatusOr<at::Tensor> Communicator::DoPeerWorkspace(int64_t bytes) {
  if (!peer_workspace_.defined() || peer_workspace_.numel() < bytes) {
    peer_workspace_ = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(device()));
  }
  return peer_workspace_;
}

absl::Status Communicator::DoPutToPeer(const at::Tensor& source, const at::Tensor& target,
                                       int64_t target_offset, int peer) {
  // The target as bytes: its sizes and strides with a last dimension of element bytes.
  const int64_t element = target.element_size();
  std::vector<int64_t> layout = {target_offset, target.dim() + 1};
  for (int64_t d = 0; d < target.dim(); ++d) layout.push_back(target.size(d));
  layout.push_back(element);
  for (int64_t d = 0; d < target.dim(); ++d) layout.push_back(target.stride(d) * element);
  layout.push_back(1);
  // Copied now: the put reads the source where it is issued, as a stream-ordered copy would.
  pending_puts_.push_back({peer, Bytes(source.contiguous().clone()), std::move(layout)});
  return absl::OkStatus();
}

absl::Status Communicator::DoPeerFence() {
  // Per peer: a header [layout words, data bytes], then one message of the puts' layouts
  // ([offset, dims, sizes..., strides...] each) followed by their data.
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(device());
  std::vector<std::vector<int64_t>> layouts(size());
  std::vector<std::vector<at::Tensor>> data(size());
  for (PendingPut& put : pending_puts_) {
    layouts[put.peer].insert(layouts[put.peer].end(), put.layout.begin(), put.layout.end());
    data[put.peer].push_back(put.bytes);
  }
  pending_puts_.clear();
  std::vector<at::Tensor> sent_heads(size()), heads(size());
  std::vector<P2POp> ops;
  for (int peer = 0; peer < size(); ++peer) {
    if (peer == rank()) continue;
    int64_t data_bytes = 0;
    for (const at::Tensor& bytes : data[peer]) data_bytes += bytes.numel();
    sent_heads[peer] = at::tensor({static_cast<int64_t>(layouts[peer].size()), data_bytes}, longs);
    heads[peer] = at::empty({2}, longs);
    ops.push_back({P2POp::Kind::kSend, Bytes(sent_heads[peer]), peer});
    ops.push_back({P2POp::Kind::kRecv, Bytes(heads[peer]), peer});
  }
  RL_RETURN_IF_ERROR(DoSendRecv(ops));
  ops.clear();
  std::vector<int64_t> words_from(size(), 0);
  std::vector<at::Tensor> sent(size()), received(size());
  for (int peer = 0; peer < size(); ++peer) {
    if (peer == rank()) continue;
    if (!data[peer].empty()) {
      std::vector<at::Tensor> parts = {Bytes(at::tensor(layouts[peer], longs))};
      parts.insert(parts.end(), data[peer].begin(), data[peer].end());
      sent[peer] = at::cat(parts);
      ops.push_back({P2POp::Kind::kSend, sent[peer], peer});
    }
    const at::Tensor head = heads[peer].cpu();
    words_from[peer] = head[0].item<int64_t>();
    if (words_from[peer] > 0) {
      received[peer] =
          at::empty({words_from[peer] * 8 + head[1].item<int64_t>()}, longs.dtype(at::kByte));
      ops.push_back({P2POp::Kind::kRecv, received[peer], peer});
    }
  }
  if (!ops.empty()) RL_RETURN_IF_ERROR(DoSendRecv(ops));
  // Apply what arrived, in the order it was put.
  for (int peer = 0; peer < size(); ++peer) {
    if (!received[peer].defined()) continue;
    const int64_t word_count = words_from[peer];
    const at::Tensor words = received[peer].narrow(0, 0, word_count * 8).view(at::kLong).cpu();
    const at::Tensor payload =
        received[peer].narrow(0, word_count * 8, received[peer].numel() - word_count * 8);
    const int64_t* w = words.data_ptr<int64_t>();
    int64_t at_word = 0, at_byte = 0;
    while (at_word < word_count) {
      const int64_t offset = w[at_word], dims = w[at_word + 1];
      const std::vector<int64_t> sizes(w + at_word + 2, w + at_word + 2 + dims);
      const std::vector<int64_t> strides(w + at_word + 2 + dims, w + at_word + 2 + 2 * dims);
      const int64_t bytes = c10::multiply_integers(sizes);
      peer_workspace_.as_strided(sizes, strides, offset)
          .copy_(payload.narrow(0, at_byte, bytes).view(sizes));
      at_word += 2 + 2 * dims;
      at_byte += bytes;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> Communicator::AllGather(const at::Tensor& input, int64_t dim) {
  constexpr absl::string_view kOp = "AllGather";
  RL_RETURN_IF_ERROR(CheckTensor(kOp, "input", input));
  RL_ASSIGN_OR_RETURN(dim, NormalizeDim(kOp, "dim", dim, std::max<int64_t>(input.dim(), 1)));
  return Run(kOp, [&]() -> absl::StatusOr<at::Tensor> {
    at::Tensor send = input.dim() == 0 ? input.reshape({1}).contiguous() : input.contiguous();
    std::vector<int64_t> shape = {size()};
    shape.insert(shape.end(), send.sizes().begin(), send.sizes().end());
    at::Tensor recv = at::empty(shape, send.options());
    at::Tensor recv_bytes = Bytes(recv);
    RL_RETURN_IF_ERROR(DoAllGather(Bytes(send), recv_bytes));
    return ConcatChunks(recv, dim);
  });
}

absl::Status Communicator::AllGatherInto(const at::Tensor& input, at::Tensor& output) {
  constexpr absl::string_view kOp = "AllGatherInto";
  RL_RETURN_IF_ERROR(CheckBuffers(kOp, input, output));
  if (output.nbytes() != input.nbytes() * size()) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": output has ", output.nbytes(),
                                                   " bytes, not ", size(), " x the ",
                                                   input.nbytes(), " of input"));
  }
  return Run(kOp, [&]() -> absl::Status {
    at::Tensor out_bytes = Bytes(output);
    return DoAllGather(Bytes(input), out_bytes);
  });
}

absl::StatusOr<at::Tensor> Communicator::ReduceScatter(const at::Tensor& input, int64_t dim,
                                                       ReduceOp op) {
  constexpr absl::string_view kOp = "ReduceScatter";
  RL_RETURN_IF_ERROR(CheckTensor(kOp, "input", input));
  RL_ASSIGN_OR_RETURN(dim, NormalizeDim(kOp, "dim", dim, input.dim()));
  RL_RETURN_IF_ERROR(CheckDivisible(kOp, input, dim, size()));
  return Run(kOp, [&]() -> absl::StatusOr<at::Tensor> {
    const at::ScalarType dtype = input.scalar_type();
    const bool native = NativeReduction(dtype);
    at::Tensor packed = PackChunks(native ? input : input.to(at::kFloat), dim, size());
    at::Tensor out = at::empty(packed.sizes().slice(1), packed.options());
    at::Tensor out_flat = out.view({-1});
    RL_RETURN_IF_ERROR(DoReduceScatter(packed.view({-1}), out_flat, op));
    // `out` is this rank's chunk with the chunk axis `dim` in place.
    return native ? out : out.to(dtype);
  });
}

absl::Status Communicator::AllReduce(at::Tensor& tensor, ReduceOp op) {
  constexpr absl::string_view kOp = "AllReduce";
  RL_RETURN_IF_ERROR(CheckTensor(kOp, "tensor", tensor));
  return Run(kOp, [&]() -> absl::Status {
    const bool native = NativeReduction(tensor.scalar_type());
    at::Tensor work = native ? tensor.contiguous() : tensor.to(at::kFloat).contiguous();
    at::Tensor flat = work.view({-1});
    RL_RETURN_IF_ERROR(DoAllReduce(flat, op));
    if (!work.is_same(tensor)) tensor.copy_(work);
    return absl::OkStatus();
  });
}

absl::Status Communicator::Broadcast(at::Tensor& tensor, int root) {
  constexpr absl::string_view kOp = "Broadcast";
  RL_RETURN_IF_ERROR(CheckTensor(kOp, "tensor", tensor));
  if (root < 0 || root >= size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": root ", root, " is not a rank of a group of ", size()));
  }
  return Run(kOp, [&]() -> absl::Status {
    at::Tensor work = tensor.contiguous();
    at::Tensor bytes = Bytes(work);
    RL_RETURN_IF_ERROR(DoBroadcast(bytes, root));
    if (!work.is_same(tensor)) tensor.copy_(work);
    return absl::OkStatus();
  });
}

absl::Status Communicator::SendRecv(absl::Span<const P2POp> ops) {
  constexpr absl::string_view kOp = "SendRecv";
  std::vector<P2POp> byte_ops;
  byte_ops.reserve(ops.size());
  for (const P2POp& op : ops) {
    const bool send = op.kind == P2POp::Kind::kSend;
    RL_RETURN_IF_ERROR(CheckTensor(kOp, send ? "send tensor" : "recv tensor", op.tensor));
    if (op.peer < 0 || op.peer >= size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kOp, ": peer ", op.peer, " is not a rank of a group of ", size()));
    }
    if (!op.tensor.is_contiguous()) {
      return absl::InvalidArgumentError(absl::StrCat(kOp, ": tensors must be contiguous"));
    }
  }
  return Run(kOp, [&]() -> absl::Status {
    for (const P2POp& op : ops) byte_ops.push_back({op.kind, Bytes(op.tensor), op.peer});
    return DoSendRecv(byte_ops);
  });
}

absl::Status Communicator::Barrier() {
  return Run("Barrier", [&] { return DoBarrier(); });
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(int color, int key) {
  return Run("Split", [&] { return DoSplit(color, key); });
}

}  // namespace raylight::comm
