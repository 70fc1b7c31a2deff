#include "models/core/sequence_parallel.h"

#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>
#include <ATen/ops/_scaled_dot_product_flash_attention.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "models/core/attention.h"
#include "models/core/copy_rows.h"
#include "models/core/side_stream.h"
#include "models/parallel/comm/communicator.h"
#include "runtime/common/round_up.h"

namespace raylight::models {
namespace {

template <typename T>
T Ok(absl::StatusOr<T> value, const char* what) {
  TORCH_CHECK(value.ok(), "sequence parallel ", what, ": ", std::string(value.status().message()));
  return *std::move(value);
}

void Check(const absl::Status& status, const char* what) {
  TORCH_CHECK(status.ok(), "sequence parallel ", what, ": ", std::string(status.message()));
}

void CheckContext(const ParallelContext& p) {
  TORCH_CHECK(p.ulysses_degree == 1 || p.ulysses != nullptr, "ulysses degree ", p.ulysses_degree,
              " without a ulysses communicator");
  TORCH_CHECK(p.ring_degree == 1 || p.ring != nullptr, "ring degree ", p.ring_degree,
              " without a ring communicator");
  TORCH_CHECK(p.sequence != nullptr, "sequence degree ", p.sequence_degree(),
              " without a sequence communicator");
  TORCH_CHECK(p.valid_tokens > 0, "sequence parallel attention needs valid_tokens");
}

// Keys [B, L, H, D]: the first `valid` of them (an empty block gives undefined tensors).
at::Tensor FirstKeys(const at::Tensor& x, int64_t valid) {
  return valid >= x.size(1) ? x : x.narrow(1, 0, valid);
}

PartialAttention MathAttentionWithLse(const at::Tensor& q, const at::Tensor& k,
                                      const at::Tensor& v) {
  // [B, H, L, D] in fp32: the reference computation, for CPUs and odd dtypes.
  at::Tensor qf = q.transpose(1, 2).to(at::kFloat);
  at::Tensor kf = k.transpose(1, 2).to(at::kFloat);
  at::Tensor vf = v.transpose(1, 2).to(at::kFloat);
  at::Tensor scores = at::matmul(qf, kf.transpose(-1, -2)) * (1.0 / std::sqrt(q.size(-1)));
  at::Tensor lse = at::logsumexp(scores, -1);
  at::Tensor out = at::matmul(at::exp(scores - lse.unsqueeze(-1)), vf);
  return {out.transpose(1, 2).to(q.scalar_type()), lse};
}

// The largest divisor of `heads` not above `requested` (at least 1).
int ChunkCount(int64_t heads, int requested) {
  for (int c = std::max(requested, 1); c > 1; --c) {
    if (heads % c == 0) return c;
  }
  return 1;
}

// Ring attention over the ring blocks of q, k, v [B, block, h, D] (this Ulysses group's heads):
// at step s this rank holds the K/V block of ring rank (r - s) mod R; it sends what it holds to
// r + 1 and receives the next from r - 1 on the side stream while it computes. Blocks beyond the
// real tokens are skipped. Returns [B, block, h, D] in q's dtype.
at::Tensor RingAttention(const at::Tensor& qb, const at::Tensor& kb, const at::Tensor& vb,
                         const ParallelContext& p) {
  const int64_t block = kb.size(1);
  const int r = p.ring_rank, size = p.ring_degree;
  at::Tensor kv = at::stack({kb, vb}).contiguous();
  PartialAttention acc;
  SideStream side(kv, p.overlap_exchanges);
  for (int step = 0; step < size; ++step) {
    const int owner = ((r - step) % size + size) % size;
    at::Tensor next;
    int arrived = -1;
    if (step + 1 < size) {
      next = at::empty_like(kv);
      side.Run([&] {
        const comm::P2POp ops[] = {{comm::P2POp::Kind::kSend, kv, (r + 1) % size},
                                   {comm::P2POp::Kind::kRecv, next, (r - 1 + size) % size}};
        Check(p.ring->SendRecv(ops), "ring exchange");
      });
      arrived = side.Mark();
      side.Keep(kv);
      side.Keep(next);
    }
    const int64_t valid = std::clamp<int64_t>(p.valid_tokens - owner * block, 0, block);
    if (valid > 0) {
      PartialAttention part =
          AttentionWithLse(qb, FirstKeys(kv[0], valid), FirstKeys(kv[1], valid));
      acc = acc.out.defined() ? MergePartials(acc, part) : part;
    }
    if (step + 1 < size) {
      // The received block is read next, and the block sent may be freed: both after the pass.
      side.Wait(arrived);
      kv = next;
    }
  }
  return acc.out.to(qb.scalar_type());
}

}  // namespace

int64_t PaddedLength(int64_t tokens, int64_t degree) {
  return (tokens + degree - 1) / degree * degree;
}

at::Tensor ShardSequence(const at::Tensor& x, int64_t dim, const ParallelContext& parallel,
                         double pad_value) {
  if (parallel.single()) return x;
  const int64_t degree = parallel.sequence_degree();
  const int64_t tokens = x.size(dim), chunk = PaddedLength(tokens, degree) / degree;
  const int64_t begin = parallel.sequence_rank() * chunk;
  const int64_t real = std::clamp<int64_t>(tokens - begin, 0, chunk);
  at::Tensor local = x.narrow(dim, std::min(begin, tokens), real);
  if (real == chunk) return local.contiguous();
  std::vector<int64_t> pad_shape = x.sizes().vec();
  pad_shape[dim] = chunk - real;
  return at::cat({local, at::full(pad_shape, pad_value, x.options())}, dim);
}

at::Tensor GatherSequence(const at::Tensor& local, int64_t dim, int64_t tokens,
                          const ParallelContext& parallel) {
  if (parallel.single()) return local;
  CheckContext(parallel);
  at::Tensor all = Ok(parallel.sequence->AllGather(local.contiguous(), dim), "gather");
  return all.narrow(dim, 0, tokens);
}

at::Tensor SumOverSequence(const at::Tensor& local, const ParallelContext& parallel) {
  if (parallel.single()) return local;
  CheckContext(parallel);
  at::Tensor sum = local.contiguous().clone();
  Check(parallel.sequence->AllReduce(sum), "sum");
  return sum;
}

PartialAttention AttentionWithLse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (q.is_cuda() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf)) {
    const auto b = q.size(0), h = q.size(2), l = q.size(1);
    at::Tensor qt = q.transpose(1, 2), kt = k.transpose(1, 2), vt = v.transpose(1, 2);
    try {  // cuDNN first, as attention.cc does; flash when cuDNN refuses the shapes
      auto result = at::_scaled_dot_product_cudnn_attention(qt, kt, vt, std::nullopt,
                                                            /*compute_log_sumexp=*/true);
      return {std::get<0>(result).transpose(1, 2), std::get<1>(result).reshape({b, h, l})};
    } catch (const c10::Error&) {
    }
    auto result = at::_scaled_dot_product_flash_attention(qt, kt, vt);
    return {std::get<0>(result).transpose(1, 2), std::get<1>(result).reshape({b, h, l})};
  }
  return MathAttentionWithLse(q, k, v);
}

PartialAttention MergePartials(const PartialAttention& a, const PartialAttention& b) {
  at::Tensor lse = at::logaddexp(a.lse, b.lse);  // [B, H, L]
  // Weights per query: exp(lse_part - lse), as [B, L, H, 1] to scale [B, L, H, D] outputs.
  at::Tensor wa = at::exp(a.lse - lse).transpose(1, 2).unsqueeze(-1);
  at::Tensor wb = at::exp(b.lse - lse).transpose(1, 2).unsqueeze(-1);
  at::Tensor out = a.out.to(at::kFloat) * wa + b.out.to(at::kFloat) * wb;
  return {out, lse};
}

SequenceAttention::SequenceAttention(const ParallelContext& parallel, AttentionLane lane)
    : parallel_(parallel), lane_(lane) {
  TORCH_CHECK(lane.count >= 1 && lane.index >= 0 && lane.index < lane.count, "attention lane ",
              lane.index, " of ", lane.count);
}

SequenceAttention::~SequenceAttention() = default;

void SequenceAttention::Set(Role role, const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "attention: q, k, v must be [B, L, H, D]");
  TORCH_CHECK(!started_, "attention: inputs set after the output was started");
  Input& input = inputs_[role];
  const ParallelContext& p = parallel_;
  if (p.single() || p.ulysses_degree == 1) {
    input.local = x;
    return;
  }
  CheckContext(p);
  const int64_t heads = x.size(2), ranks = p.ulysses_degree;
  TORCH_CHECK(heads % ranks == 0, "attention: ", heads,
              " heads do not divide by the ulysses degree ", ranks);
  if (side_ == nullptr) Prepare(x);
  TORCH_CHECK(x.sizes() == c10::IntArrayRef(input_shape_),
              "attention: q, k and v differ in shape: ", c10::IntArrayRef(input_shape_), " and ",
              x.sizes());
  if (on_peers_) {
    SetOnPeers(role, x);
    return;
  }
  const at::Tensor sent = Slot(kSentQuery + static_cast<int>(role), packed_shape_);
  input.received = Slot(kReceivedQuery + static_cast<int>(role), packed_shape_);
  input.arrived.clear();
  // Packed and exchanged on the side stream, so the compute stream goes straight on to the next
  // projection; x is read there, so its memory waits for the side stream before reuse.
  const at::Tensor source = x.contiguous();
  side_->Keep(source);
  side_->Run([&] {
    // Heads (j * C + c) * Hc .. + Hc, chunk c for rank j, become one contiguous piece.
    const int64_t chunk_heads = packed_shape_[4];
    for (int c = 0; c < chunks_; ++c) {
      for (int64_t j = 0; j < ranks; ++j) {
        CopyRows(sent[c][j], source.narrow(2, (j * chunks_ + c) * chunk_heads, chunk_heads));
      }
    }
    for (int c = 0; c < chunks_; ++c) {
      at::Tensor into = input.received[c];
      Check(p.ulysses->AllToAllInto(sent[c], into), "all-to-all");
      input.arrived.push_back(side_->Mark());
    }
  });
}

void SequenceAttention::Prepare(const at::Tensor& x) {
  const ParallelContext& p = parallel_;
  const int64_t heads = x.size(2), ranks = p.ulysses_degree;
  if (lane_.side != nullptr) {
    side_ = lane_.side;
  } else {
    own_side_ = std::make_unique<SideStream>(x, p.overlap_exchanges);
    side_ = own_side_.get();
  }
  chunks_ = ChunkCount(heads / ranks, p.ulysses_chunks);
  packed_shape_ = {chunks_, ranks, x.size(0), x.size(1), heads / ranks / chunks_, x.size(3)};
  dtype_ = x.scalar_type();
  input_shape_ = x.sizes().vec();
  // Buffers the same on every rank, each the size of one input. Every lane asks for all lanes'
  // buffers, so the memory never grows (and moves) while a lane is in flight.
  constexpr int64_t kAlign = 4096;
  slot_bytes_ = RoundUp(x.numel() * x.element_size(), kAlign);
  if (p.peer_exchanges && p.ring_degree == 1 && chunks_ == 1) {
    absl::StatusOr<at::Tensor> peers =
        p.ulysses->PeerWorkspace(lane_.count * kPeerSlots * slot_bytes_);
    if (peers.ok()) {
      workspace_ = *std::move(peers);
      on_peers_ = true;
      return;
    }
    // Unimplemented: these ranks cannot map each other's memory (the same on every rank).
    TORCH_CHECK(absl::IsUnimplemented(peers.status()),
                "sequence parallel peer memory: ", std::string(peers.status().message()));
  }
  workspace_ = Ok(p.ulysses->Workspace(lane_.count * kSlots * slot_bytes_), "workspace");
}

void SequenceAttention::SetOnPeers(Role role, const at::Tensor& x) {
  const ParallelContext& p = parallel_;
  const int64_t ranks = p.ulysses_degree, rank = p.ulysses_rank;
  const int64_t batch = x.size(0), local = x.size(1), heads = x.size(2) / ranks;
  Input& input = inputs_[role];
  input.received =
      Slot(kPeerQuery + static_cast<int>(role), {batch, ranks * local, heads, x.size(3)});
  input.arrived.clear();
  // This rank's tokens' rows of the buffer every rank holds for its heads.
  const at::Tensor rows = input.received.narrow(1, rank * local, local);
  // Its own heads stay on this device: a copy inside one device runs on the SMs, so it could not
  // overlap compute anyway and goes on the compute stream, ordered after the attention that read
  // this buffer last. As rows: copy_'s strided kernel moves this layout at half the speed.
  CopyRows(rows, x.narrow(2, rank * heads, heads));
  PutToPeers([&](int64_t j) { return x.narrow(2, j * heads, heads); }, rows);
  input.arrived.push_back(side_->Mark());
}

void SequenceAttention::PutToPeers(absl::FunctionRef<at::Tensor(int64_t)> piece_for,
                                   const at::Tensor& target) {
  const ParallelContext& p = parallel_;
  std::vector<at::Tensor> pieces;
  for (int64_t j = 0; j < p.ulysses_degree; ++j) {
    if (j != p.ulysses_rank) pieces.push_back(piece_for(j));
  }
  // The pieces are read on the side stream: their memory waits for it before reuse.
  for (const at::Tensor& piece : pieces) side_->Keep(piece);
  side_->Run([&] {
    // The first fence: every rank is done reading what its buffer held (its reads came earlier
    // in its stream order); the second: every piece has arrived.
    Check(p.ulysses->PeerFence(), "fence");
    auto piece = pieces.begin();
    for (int64_t j = 0; j < p.ulysses_degree; ++j) {
      if (j != p.ulysses_rank)
        Check(p.ulysses->PutToPeer(*piece++, target, static_cast<int>(j)), "put");
    }
    Check(p.ulysses->PeerFence(), "fence");
  });
}

void SequenceAttention::StartUlyssesOnPeers() {
  const ParallelContext& p = parallel_;
  const int64_t ranks = p.ulysses_degree, rank = p.ulysses_rank;
  const int64_t local = input_shape_[1], heads = input_shape_[2] / ranks;
  const int64_t valid = std::clamp<int64_t>(p.valid_tokens, 0, ranks * local);
  for (const Input& input : inputs_) side_->Wait(input.arrived.back());
  const at::Tensor out =
      LocalAttention(inputs_[kQuery].received, FirstKeys(inputs_[kKey].received, valid),
                     FirstKeys(inputs_[kValue].received, valid),
                     p.fp8_attention);  // [B, P * L/P, H/P, D]
  output_ = Slot(kPeerOutput, input_shape_);
  // This rank's heads' columns of every rank's output.
  const at::Tensor columns = output_.narrow(2, rank * heads, heads);
  CopyRows(columns, out.narrow(1, rank * local, local));
  PutToPeers([&](int64_t j) { return out.narrow(1, j * local, local); }, columns);
  returned_ = side_->Mark();
}

at::Tensor SequenceAttention::Slot(int index, c10::IntArrayRef shape) const {
  const int per_lane = on_peers_ ? static_cast<int>(kPeerSlots) : static_cast<int>(kSlots);
  return workspace_.narrow(0, (lane_.index * per_lane + index) * slot_bytes_, slot_bytes_)
      .narrow(0, 0, c10::multiply_integers(shape) * c10::elementSize(dtype_))
      .view(dtype_)
      .view(shape);
}

at::Tensor SequenceAttention::Received(Role role, int chunk) const {
  const at::Tensor& piece = inputs_[role].received[chunk];  // [P, B, L/P, Hc, D]
  // Rank j sent its sequence chunk j, and a Ulysses group's chunks are neighbours: the ring block
  // is their concatenation (a view for batch 1).
  return piece.permute({1, 0, 2, 3, 4}).flatten(1, 2);
}

void SequenceAttention::StartOutput() {
  TORCH_CHECK(!started_, "attention: output started twice");
  for (const Input& input : inputs_) {
    TORCH_CHECK(input.local.defined() || input.received.defined(),
                "attention: q, k and v must all be set before the output");
  }
  started_ = true;
  const ParallelContext& p = parallel_;
  const at::Tensor& q = inputs_[kQuery].local;
  if (p.single() && p.fp8_attention) {
    output_e4m3_ = Fp8AttentionE4m3(q, inputs_[kKey].local, inputs_[kValue].local);
  } else if (p.single()) {
    output_ = LocalAttention(q, inputs_[kKey].local, inputs_[kValue].local);
  } else if (p.ulysses_degree == 1) {
    CheckContext(p);
    output_ = RingAttention(q, inputs_[kKey].local, inputs_[kValue].local, p);
  } else if (on_peers_) {
    StartUlyssesOnPeers();
  } else if (p.ring_degree == 1) {
    StartUlysses();
  } else {
    StartUsp();
  }
}

void SequenceAttention::StartUlysses() {
  const ParallelContext& p = parallel_;
  const int64_t ranks = p.ulysses_degree, local = packed_shape_[3];
  // Every key is here: the padding at the end of the sequence is cut off, no partial results.
  const int64_t valid = std::clamp<int64_t>(p.valid_tokens, 0, ranks * local);
  // The output goes back through the query's and key's send slots: their exchanges finished
  // before the first chunk's attention could start (the side stream runs in order).
  const at::Tensor back = Slot(kSentQuery, packed_shape_), returned = Slot(kSentKey, packed_shape_);
  // Where the output lands: allocated now on the compute stream, filled on the side stream.
  output_ = at::empty(input_shape_, back.options());
  for (int c = 0; c < chunks_; ++c) {
    for (const Input& input : inputs_) side_->Wait(input.arrived[c]);
    at::Tensor out = LocalAttention(Received(kQuery, c), FirstKeys(Received(kKey, c), valid),
                                    FirstKeys(Received(kValue, c), valid), p.fp8_attention);
    SendBack(out, back[c], returned[c]);
  }
  side_->Run([&] { Unpack(returned); });
  returned_ = side_->Mark();
}

void SequenceAttention::SendBack(const at::Tensor& out, const at::Tensor& back, at::Tensor into) {
  // [B, P * L/P, h, D] -> [P, B, L/P, h, D]: rank j's tokens go back to rank j.
  const int64_t ranks = back.size(0), local = back.size(2);
  side_->Keep(out);
  side_->Run([&] {
    for (int64_t j = 0; j < ranks; ++j) CopyRows(back[j], out.narrow(1, j * local, local));
    Check(parallel_.ulysses->AllToAllInto(back, into), "all-to-all out");
  });
}

void SequenceAttention::Unpack(const at::Tensor& returned) {
  // [C, P, B, L/P, Hc, D] -> [B, L/P, H, D]: chunk c from rank j holds heads (j * C + c) * Hc ..
  // + Hc of this rank's tokens.
  const int64_t chunks = returned.size(0), ranks = returned.size(1), heads = returned.size(4);
  for (int64_t c = 0; c < chunks; ++c) {
    for (int64_t j = 0; j < ranks; ++j) {
      CopyRows(output_.narrow(2, (j * chunks + c) * heads, heads), returned[c][j]);
    }
  }
}

void SequenceAttention::StartUsp() {
  const ParallelContext& p = parallel_;
  for (const Input& input : inputs_) side_->Wait(input.arrived.back());
  // This group's heads in order: [C, P, B, L/P, Hc, D] -> [B, P * L/P, C * Hc, D].
  auto group_block = [&](Role role) {
    const at::Tensor& received = inputs_[role].received;
    return received.permute({2, 1, 3, 0, 4, 5}).flatten(3, 4).flatten(1, 2);
  };
  at::Tensor out = RingAttention(group_block(kQuery), group_block(kKey), group_block(kValue), p);
  // Back to the owners in one piece (a chunk count of 1), then unpacked.
  const int64_t ranks = p.ulysses_degree, local = out.size(1) / ranks;
  const std::vector<int64_t> whole = {1, ranks, out.size(0), local, out.size(2), out.size(3)};
  const at::Tensor back = Slot(kSentQuery, packed_shape_).view(whole)[0];
  const at::Tensor returned = Slot(kSentKey, packed_shape_).view(whole);
  output_ = at::empty(input_shape_, back.options());
  SendBack(out, back, returned[0]);
  side_->Run([&] { Unpack(returned); });
  returned_ = side_->Mark();
}

at::Tensor SequenceAttention::Output() {
  if (!started_) StartOutput();
  if (output_e4m3_.has_value() && !output_.defined()) {
    output_ = DequantizeFp8Attention(*output_e4m3_);
  }
  // Under Ulysses the output is filled on the side stream: wait for it there.
  if (returned_ >= 0) side_->Wait(returned_);
  return output_;
}

LinearInput SequenceAttention::OutputAsLinearInput() {
  if (!started_) StartOutput();
  if (!output_e4m3_.has_value() || output_.defined()) return LinearInput(Output().flatten(-2));
  const Fp8AttentionOutput out = *output_e4m3_;
  std::vector<int64_t> sizes = out.values.sizes().vec();  // [B, L, H, D] -> [B, L, H * D]
  sizes[sizes.size() - 2] *= sizes.back();
  sizes.pop_back();
  const int64_t width = sizes.back(), rows = out.values.numel() / std::max<int64_t>(width, 1);
  // The rowwise GEMM takes one scale per row: v's descale repeated (a few KB, one small copy).
  Fp8Rows tokens{out.values.view({rows, width}), out.descale.expand({rows, 1}).contiguous()};
  return LinearInput(std::move(tokens), sizes, at::kBFloat16,
                     [out] { return DequantizeFp8Attention(out).flatten(-2); });
}

at::Tensor SequenceParallelAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const ParallelContext& p) {
  SequenceAttention attention(p);
  attention.SetQuery(q);
  attention.SetKey(k);
  attention.SetValue(v);
  return attention.Output();
}

}  // namespace raylight::models
