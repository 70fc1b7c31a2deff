#include "runtime/head/placement.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raylight::head {
namespace {

std::string DescribeFree(const std::vector<FreeWorkers>& nodes) {
  std::vector<std::string> parts;
  for (const auto& node : nodes)
    parts.push_back(absl::StrCat(node.node_id, ": ", node.worker_ids.size()));
  return parts.empty() ? "no live nodes" : absl::StrJoin(parts, ", ");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> PlaceRanks(std::vector<FreeWorkers> nodes, int count,
                                                    v1::PlacementStrategy strategy,
                                                    absl::string_view resource_name) {
  // Most free workers first; ties by node id, so placement is deterministic.
  std::sort(nodes.begin(), nodes.end(), [](const FreeWorkers& a, const FreeWorkers& b) {
    if (a.worker_ids.size() != b.worker_ids.size())
      return a.worker_ids.size() > b.worker_ids.size();
    return a.node_id < b.node_id;
  });
  size_t total = 0;
  for (const auto& node : nodes) total += node.worker_ids.size();
  const std::string strategy_name = v1::PlacementStrategy_Name(strategy);
  if (total < static_cast<size_t>(count)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("size: ", count, " ranks need ", count, " free ", resource_name,
                     " workers; free per node: ", DescribeFree(nodes)));
  }
  std::vector<std::string> placed;
  switch (strategy) {
    case v1::STRICT_PACK: {
      if (nodes.empty() || nodes[0].worker_ids.size() < static_cast<size_t>(count)) {
        return absl::ResourceExhaustedError(
            absl::StrCat("strategy: STRICT_PACK needs ", count, " free ", resource_name,
                         " workers on one node; free per node: ", DescribeFree(nodes)));
      }
      placed.assign(nodes[0].worker_ids.begin(), nodes[0].worker_ids.begin() + count);
      break;
    }
    case v1::SPREAD: {
      std::vector<size_t> next(nodes.size(), 0);
      while (placed.size() < static_cast<size_t>(count)) {
        for (size_t n = 0; n < nodes.size() && placed.size() < static_cast<size_t>(count); ++n) {
          if (next[n] < nodes[n].worker_ids.size())
            placed.push_back(nodes[n].worker_ids[next[n]++]);
        }
      }
      break;
    }
    default: {  // PACK
      for (const auto& node : nodes) {
        for (const auto& worker : node.worker_ids) {
          if (placed.size() == static_cast<size_t>(count)) break;
          placed.push_back(worker);
        }
      }
      break;
    }
  }
  return placed;
}

}  // namespace raylight::head
