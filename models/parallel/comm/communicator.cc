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
  // Bad arguments leave the group intact; anything else may have left peers mid-collective.
  if (!status.ok() && status.code() != absl::StatusCode::kInvalidArgument) failure_ = status;
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
