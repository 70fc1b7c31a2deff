// The mesh one forward runs on (DESIGN.md, "Compute"): sequence parallelism as ulysses x ring,
// with the communicators of each axis, and how its attention computes. Model code passes it to the
// attention op and to the token shard/gather helpers (sequence_parallel.h) and never looks inside;
// a single-process forward uses the default. Built by models/parallel/mesh.h from a group's
// communicator.
#pragma once

#include <cstdint>

namespace raylight::comm {
class Communicator;
}

namespace raylight::models {

struct ParallelContext {
  int ulysses_degree = 1;
  int ring_degree = 1;
  comm::Communicator* ulysses = nullptr;   // the ranks that exchange heads (all-to-all)
  comm::Communicator* ring = nullptr;      // the ranks that pass K/V around
  comm::Communicator* sequence = nullptr;  // all ulysses x ring ranks, ranked ring-major
  int ulysses_rank = 0;
  int ring_rank = 0;
  // Set by the model for each forward: the real (unpadded) number of tokens of the sequence the
  // ranks share. Attention ignores the padding keys beyond it.
  int64_t valid_tokens = 0;
  // How Ulysses' exchanges overlap compute (sequence_parallel.h, SequenceAttention): on a side
  // stream when `overlap_exchanges` (false: on the compute stream, the plain schedule the
  // benchmarks compare against), each of q, k, v and the output in `ulysses_chunks` head chunks
  // (the largest divisor of the heads per rank not above it). More chunks hide more of the
  // exchange but split the attention into smaller launches: on Wan 14B with 2 H200s the smaller
  // launches cost ~4% of the attention, more than the exchange they hide, so 1 is the default.
  int ulysses_chunks = 1;
  bool overlap_exchanges = true;
  // With Ulysses and overlap_exchanges, an even batch (cond and uncond in one forward) runs as two
  // micro-batches whose blocks interleave: each one's exchanges run on the copy engines while the
  // other one computes, so no exchange waits on an idle compute stream (two-batch overlap, as
  // DeepSeek's inference and SGLang schedule expert all-to-alls).
  bool interleave_micro_batches = true;
  // Pure Ulysses exchanges as puts into the peers' memory where the Ulysses communicator has it
  // (sequence_parallel.h): no packing copies, and the copies inside a device on the compute
  // stream, where they cannot stall behind an SM-filling kernel. false: all-to-alls on the
  // workspace (the schedule of session 9, kept for comparison and for groups without it).
  bool peer_exchanges = true;

  // The job's `attention: fp8` (fp8_attention.h): the self-attention of one process and of
  // Ulysses (whose ranks each run whole-sequence attention on their heads) as cuDNN's fp8 kernel.
  // Ring attention merges partial outputs by their log-sum-exp, which the fp8 kernel does not
  // return on Hopper, so Ring and USP stay bf16; cross-attention over a short text is bf16 too.
  bool fp8_attention = false;

  int sequence_degree() const { return ulysses_degree * ring_degree; }
  // This rank's chunk of the padded sequence: ring-major, so a Ulysses group's chunks are
  // neighbours and together form that group's ring block.
  int sequence_rank() const { return ring_rank * ulysses_degree + ulysses_rank; }
  bool single() const { return sequence_degree() == 1; }
};

}  // namespace raylight::models
