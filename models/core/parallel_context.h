// The mesh one forward runs on (DESIGN.md, "Compute"): sequence parallelism as ulysses x ring,
// with the communicators of each axis. Model code passes it to the attention op and to the
// token split/gather helpers and never looks inside; a single-process forward uses the default.
#pragma once

namespace raylight::comm {
class Communicator;
}

namespace raylight::models {

struct ParallelContext {
  int ulysses_degree = 1;
  int ring_degree = 1;
  comm::Communicator* ulysses = nullptr;  // the ranks that exchange heads (all-to-all)
  comm::Communicator* ring = nullptr;     // the ranks that pass K/V around

  int sequence_degree() const { return ulysses_degree * ring_degree; }
  bool single() const { return sequence_degree() == 1; }
};

}  // namespace raylight::models
