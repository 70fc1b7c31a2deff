// Sequence parallelism over a ParallelContext: splitting a token sequence across the ranks,
// gathering it back, and the attention that lets each rank's queries see every rank's keys.
//
// Layout: the sequence is padded to a multiple of the SP degree (ulysses x ring) and cut into
// that many equal chunks; rank (ring r, ulysses u) holds chunk r * ulysses + u. After Ulysses'
// all-to-all, a Ulysses group holds its ring block (its chunks side by side) for 1/ulysses of the
// heads; Ring passes those blocks around. Padding is always at the end of the sequence, so it is
// excluded from attention by cutting the padded keys off (no masks, so flash/cuDNN kernels run),
// which makes any length give the single-process answer.
//
// Errors (a broken communicator, a context without communicators) throw c10::Error like any op;
// model entry points turn them into a Status.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "models/core/fp8_attention.h"
#include "models/core/fp8_linear.h"
#include "models/core/parallel_context.h"

namespace raylight::models {

// `tokens` rounded up to a multiple of `degree`.
int64_t PaddedLength(int64_t tokens, int64_t degree);

// This rank's chunk of `x` along `dim` (x holds the whole, unpadded sequence; the padding rows
// are filled with `pad_value`).
at::Tensor ShardSequence(const at::Tensor& x, int64_t dim, const ParallelContext& parallel,
                         double pad_value = 0);

// The inverse: every rank's chunk gathered along `dim` (in sequence order), padding dropped.
at::Tensor GatherSequence(const at::Tensor& local, int64_t dim, int64_t tokens,
                          const ParallelContext& parallel);

// The sum over every rank of the sequence group of `local` (same shape on every rank): a value
// measured over the whole sequence from each rank's rows. `local` itself on one rank.
at::Tensor SumOverSequence(const at::Tensor& local, const ParallelContext& parallel);

// Self-attention with q, k, v [B, L/P, H, D] this rank's chunks (parallel.valid_tokens set);
// returns this rank's chunk of the output. Ulysses, Ring, or both (USP).
at::Tensor SequenceParallelAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const ParallelContext& parallel);

// The same, fed one input at a time so that Ulysses' exchanges overlap the compute still to come:
// each of q, k, v starts its all-to-all on a side stream as soon as it is handed over (while the
// model computes the next projection), in `parallel.ulysses_chunks` head chunks; attention then
// runs chunk by chunk as the chunks arrive, and each chunk's output goes back while the next
// chunk's attention runs. With Ring (USP) the input exchanges overlap the same way and the output
// goes back in one piece.
//
//   SequenceAttention attention(parallel);
//   attention.SetQuery(q);  // [B, L/P, H, D]
//   attention.SetKey(k);
//   attention.SetValue(v);
//   at::Tensor out = attention.Output();  // [B, L/P, H, D]
//
// Alone, the last value exchange and the last output exchange have nothing to overlap. Several
// attentions in flight at once (micro-batches of one batch, each its own `AttentionLane` of a
// shared side stream) hide those too: the model hands over micro-batch A's inputs, then B's (A's
// value exchange runs meanwhile), calls StartOutput on A then B (A's output goes back while B's
// attention runs), and only then Output on A and B (B's output goes back while A's block goes on).
//
// Pure Ulysses exchanges on peer memory (`parallel.peer_exchanges`, where the communicator has a
// PeerWorkspace: NCCL between GPUs of one host that can map each other's memory; Gloo emulates
// it): each rank puts the heads a peer owns straight from q, k, v into that peer's buffer, at the
// rows of its own tokens, and the peer's attention reads that buffer as it is; the output goes
// back the same way, straight into the rows and heads of the owner's output buffer. The puts are
// copy-engine copies, which run beside the attention and GEMMs however busy the SMs are; the only
// copies inside a device (this rank's own heads of its own tokens) run on the compute stream.
// Otherwise (Ring, head chunks, no peer memory) the exchanges read and write slots of the Ulysses
// communicator's Workspace (on NCCL a symmetric window, so the all-to-alls run on the copy
// engines), one set of slots per lane; packing into them and unpacking the output out of them are
// row copies (copy_rows.h) on the side stream.
// Either way the compute stream only hands tensors over and waits where it reads a result, and
// the buffers are reused by the next SequenceAttention of that lane: one at a time per lane and
// communicator. On peer memory the output is a view of the lane's buffer, valid until the lane's
// next attention starts its output. Without sequence parallelism it is the local kernel. Throws
// c10::Error like any op.
class SideStream;
struct AttentionLane {
  SideStream* side = nullptr;  // shared by the lanes, outliving them; null: one of its own
  int index = 0;               // this attention's slots in the workspace
  int count = 1;               // lanes in flight together (all with inputs of the same shape)
};

class SequenceAttention {
 public:
  explicit SequenceAttention(const ParallelContext& parallel, AttentionLane lane = {});
  ~SequenceAttention();  // waits (on the compute stream) for exchanges still in flight
  SequenceAttention(const SequenceAttention&) = delete;
  SequenceAttention& operator=(const SequenceAttention&) = delete;

  void SetQuery(const at::Tensor& q) { Set(kQuery, q); }
  void SetKey(const at::Tensor& k) { Set(kKey, k); }
  void SetValue(const at::Tensor& v) { Set(kValue, v); }
  // Runs the attention and starts sending its output back; every input must have been set.
  void StartOutput();
  // This rank's output (starting it first if StartOutput was not called). On peer memory a view
  // of the lane's buffer: read it before the lane's next attention starts its output.
  at::Tensor Output();
  // The output with its heads flattened, [B, L/P, H * D], as the input of the output projection.
  // On one process with fp8 attention the kernel's e4m3 bytes with v's descale on every row,
  // which an fp8 linear reads as they are: no return to bf16 and no second rounding; a bf16
  // linear gets Output() as it would have.
  LinearInput OutputAsLinearInput();

 private:
  enum Role { kQuery = 0, kKey = 1, kValue = 2 };
  // Workspace slots of a lane, each one packed tensor: what q, k, v send (the output goes back
  // through the first two) and what they receive.
  enum SlotIndex {
    kSentQuery = 0,
    kSentKey,
    kSentValue,
    kReceivedQuery,
    kReceivedKey,
    kReceivedValue,
    kSlots
  };
  // On peer memory a lane's buffers: q, k, v for this rank's heads over the whole sequence
  // ([B, P * L/P, H/P, D], every rank puts its tokens' rows) and the output ([B, L/P, H, D],
  // every rank puts its heads' columns).
  enum PeerSlotIndex { kPeerQuery = 0, kPeerKey, kPeerValue, kPeerOutput, kPeerSlots };
  struct Input {
    at::Tensor local;          // as handed over (no Ulysses exchange)
    at::Tensor received;       // [C, P, B, L/P, heads/(P*C), D]: chunk c from rank j; on peer
                               // memory [B, P * L/P, H/P, D]
    std::vector<int> arrived;  // per chunk: the side stream's mark after its exchange
  };

  void Set(Role role, const at::Tensor& x);
  // The first input's shape decides the buffers: peer memory where it can, else the workspace.
  void Prepare(const at::Tensor& x);
  void SetOnPeers(Role role, const at::Tensor& x);
  // On the side stream: fence, piece_for(j) into rank j's buffer at `target`'s place for every
  // other rank j, fence.
  void PutToPeers(absl::FunctionRef<at::Tensor(int64_t)> piece_for, const at::Tensor& target);
  void StartUlyssesOnPeers();
  // This lane's slot `index` (of the workspace's kSlots or, on peer memory, kPeerSlots per lane)
  // viewed as a tensor of `shape` (at most one input's bytes).
  at::Tensor Slot(int index, c10::IntArrayRef shape) const;
  // Chunk c of an exchanged input as this rank's ring block: [B, P * L/P, heads/(P*C), D].
  at::Tensor Received(Role role, int chunk) const;
  void StartUlysses();
  void StartUsp();
  // On the side stream: this rank's attention output `out` [B, P * L/P, h, D] packed per owner
  // into `back` [P, B, L/P, h, D] and exchanged into `into`.
  void SendBack(const at::Tensor& out, const at::Tensor& back, at::Tensor into);
  // On the side stream: the returned output [C, P, B, L/P, Hc, D] out of the workspace (the
  // lane's next attention reuses it) into output_ [B, L/P, H, D].
  void Unpack(const at::Tensor& returned);

  const ParallelContext& parallel_;
  const AttentionLane lane_;
  int chunks_ = 1;
  std::vector<int64_t> input_shape_;   // [B, L/P, H, D], the same for q, k, v
  std::vector<int64_t> packed_shape_;  // [C, P, B, L/P, heads/(P*C), D]
  at::ScalarType dtype_ = at::kFloat;
  int64_t slot_bytes_ = 0;
  at::Tensor workspace_;   // the Ulysses communicator's; reused by every block
  bool on_peers_ = false;  // exchanges by puts into peer memory (workspace_ is then peer memory)
  Input inputs_[3];
  bool started_ = false;
  at::Tensor output_;  // the output; under Ulysses filled on the side stream by returned_
  std::optional<Fp8AttentionOutput> output_e4m3_;  // one process, fp8 attention: the kernel's
  int returned_ = -1;  // under Ulysses: the side stream's mark after the output's unpacking
  SideStream* side_ = nullptr;            // own_side_ or the lane's
  std::unique_ptr<SideStream> own_side_;  // last: destroyed first, joining before buffers go
};

// Attention and its log-sum-exp, so partial results over disjoint key sets can be merged:
// q [B, Lq, H, D], k/v [B, Lk, H, D] -> out [B, Lq, H, D], lse [B, H, Lq] (fp32).
struct PartialAttention {
  at::Tensor out;
  at::Tensor lse;
};
PartialAttention AttentionWithLse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Merges two partial results over disjoint keys (the online-softmax rule), in fp32.
PartialAttention MergePartials(const PartialAttention& a, const PartialAttention& b);

}  // namespace raylight::models
