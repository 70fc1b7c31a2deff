// The membership computation behind Communicator::Split, shared by backends that cannot split
// natively: every rank learns every rank's (color, key) and derives its new group.
#pragma once

#include "absl/status/statusor.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::comm {

struct SplitPlan {
  bool member = false;  // false: this rank passed a negative color
  int new_rank = -1;
  int new_size = 0;
};

// Collective over `comm`: all-gathers (color, key) and ranks each color's members by (key, rank).
absl::StatusOr<SplitPlan> PlanSplit(Communicator& comm, int color, int key);

}  // namespace raylight::comm
