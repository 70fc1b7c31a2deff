// The mesh one forward runs on (DESIGN.md, "Compute"): sequence parallelism as ulysses x ring,
// with the communicators of each axis. Model code passes it to the attention op and to the
// token shard/gather helpers (sequence_parallel.h) and never looks inside; a single-process
// forward uses the default. Built by models/parallel/mesh.h from a group's communicator.
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

  int sequence_degree() const { return ulysses_degree * ring_degree; }
  // This rank's chunk of the padded sequence: ring-major, so a Ulysses group's chunks are
  // neighbours and together form that group's ring block.
  int sequence_rank() const { return ring_rank * ulysses_degree + ulysses_rank; }
  bool single() const { return sequence_degree() == 1; }
};

}  // namespace raylight::models
