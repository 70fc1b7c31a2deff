#include "models/core/sequence_parallel.h"

#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>
#include <ATen/ops/_scaled_dot_product_flash_attention.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "models/core/attention.h"
#include "models/parallel/comm/communicator.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace raylight::models {
namespace {

template <typename T>
T Ok(absl::StatusOr<T> value, const char* what) {
  TORCH_CHECK(value.ok(), "sequence parallel ", what, ": ", std::string(value.status().message()));
  return *std::move(value);
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

// One ring step's K/V transfer. On CUDA it runs on a side stream so that it overlaps the
// current block's attention (the NCCL communicator enqueues on the caller's current stream); on
// the CPU (Gloo) it has finished when Start returns.
class RingTransfer {
 public:
  RingTransfer(comm::Communicator& ring, const at::Tensor& like) : ring_(ring) {
#ifdef RAYLIGHT_HAVE_CUDA
    if (like.is_cuda()) {
      side_.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, like.device().index()));
    }
#endif
  }

  void Start(const at::Tensor& send, int to, const at::Tensor& receive, int from) {
    const comm::P2POp ops[] = {{comm::P2POp::Kind::kSend, send, to},
                               {comm::P2POp::Kind::kRecv, receive, from}};
#ifdef RAYLIGHT_HAVE_CUDA
    if (side_) {
      // The side stream waits for `send` to be written; the allocator must not reuse either
      // buffer before the side stream is done with it.
      at::cuda::CUDAEvent ready;
      ready.record(c10::cuda::getCurrentCUDAStream(send.device().index()));
      ready.block(*side_);
      send.record_stream(*side_);
      receive.record_stream(*side_);
      c10::cuda::CUDAStreamGuard guard(*side_);
      Check(ring_.SendRecv(ops));
      return;
    }
#endif
    Check(ring_.SendRecv(ops));
  }

  // The compute stream waits for the transfer before reading the received block.
  void Finish(const at::Tensor& received) {
#ifdef RAYLIGHT_HAVE_CUDA
    if (side_) {
      at::cuda::CUDAEvent done;
      done.record(*side_);
      done.block(c10::cuda::getCurrentCUDAStream(received.device().index()));
    }
#endif
  }

 private:
  static void Check(const absl::Status& status) {
    TORCH_CHECK(status.ok(), "sequence parallel ring exchange: ", std::string(status.message()));
  }

  comm::Communicator& ring_;
#ifdef RAYLIGHT_HAVE_CUDA
  std::optional<c10::cuda::CUDAStream> side_;
#endif
};

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

at::Tensor SequenceParallelAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const ParallelContext& p) {
  CheckContext(p);
  const int64_t heads = q.size(2);
  TORCH_CHECK(heads % p.ulysses_degree == 0, "attention: ", heads,
              " heads do not divide by the ulysses degree ", p.ulysses_degree);
  // Ulysses: sequence-sharded, all heads -> this group's ring block, heads / ulysses.
  at::Tensor qb = q, kb = k, vb = v;
  if (p.ulysses_degree > 1) {
    qb = Ok(p.ulysses->AllToAll(q.contiguous(), 2, 1), "all-to-all q");
    kb = Ok(p.ulysses->AllToAll(k.contiguous(), 2, 1), "all-to-all k");
    vb = Ok(p.ulysses->AllToAll(v.contiguous(), 2, 1), "all-to-all v");
  }
  const int64_t block = kb.size(1);  // tokens per ring block
  auto valid_in_block = [&](int owner) {
    return std::clamp<int64_t>(p.valid_tokens - owner * block, 0, block);
  };

  at::Tensor out;
  if (p.ring_degree == 1) {
    // Ulysses alone: every key is here, no partial results to merge, so the single-process kernel
    // (no log-sum-exp) runs on the real keys.
    out = LocalAttention(qb, FirstKeys(kb, valid_in_block(0)), FirstKeys(vb, valid_in_block(0)));
  } else {
    // Ring: at step s this rank holds the K/V block of ring rank (r - s) mod R; sends what it
    // holds to r + 1 and receives the next from r - 1 while it computes. Blocks beyond the real
    // tokens are skipped.
    const int r = p.ring_rank, size = p.ring_degree;
    at::Tensor kv = at::stack({kb, vb}).contiguous();
    RingTransfer transfer(*p.ring, kv);
    PartialAttention acc;
    for (int step = 0; step < size; ++step) {
      const int owner = ((r - step) % size + size) % size;
      at::Tensor next;
      if (step + 1 < size) {
        next = at::empty_like(kv);
        transfer.Start(kv, (r + 1) % size, next, (r - 1 + size) % size);
      }
      const int64_t valid = valid_in_block(owner);
      if (valid > 0) {
        PartialAttention part =
            AttentionWithLse(qb, FirstKeys(kv[0], valid), FirstKeys(kv[1], valid));
        acc = acc.out.defined() ? MergePartials(acc, part) : part;
      }
      if (step + 1 < size) {
        transfer.Finish(next);
        kv = next;
      }
    }
    out = acc.out.to(q.scalar_type());
  }
  // Back: this group's ring block, heads / ulysses -> this rank's chunk, all heads.
  if (p.ulysses_degree > 1) out = Ok(p.ulysses->AllToAll(out.contiguous(), 1, 2), "all-to-all out");
  return out;
}

}  // namespace raylight::models
