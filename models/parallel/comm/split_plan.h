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
  int leader = -1;  // old rank of the member that becomes rank 0 of this rank's new group
};

// Collective over `comm`: all-gathers (color, key) and ranks each color's members by (key, rank).
// Waits for the exchange through Synchronize(), so a missing peer ends in the comm's timeout.
absl::StatusOr<SplitPlan> PlanSplit(Communicator& comm, int color, int key);

}  // namespace raylight::comm
