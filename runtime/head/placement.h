// Placement of a collective group's ranks on free workers: PACK (fill the node with the most free
// workers first, then spill), SPREAD (round-robin over nodes), STRICT_PACK (one node or nothing).
// A pure function, so that every strategy is unit-tested without a cluster.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "raylight/v1/common.pb.h"

namespace raylight::head {

struct FreeWorkers {
  std::string node_id;
  std::vector<std::string> worker_ids;  // free workers of the wanted kind on this node
};

// Worker ids for ranks 0..count-1 (ranks on one node are contiguous under PACK), or
// RESOURCE_EXHAUSTED saying what is free.
absl::StatusOr<std::vector<std::string>> PlaceRanks(std::vector<FreeWorkers> nodes, int count,
                                                    v1::PlacementStrategy strategy,
                                                    absl::string_view resource_name);

}  // namespace raylight::head
