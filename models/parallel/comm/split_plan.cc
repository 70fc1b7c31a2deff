#include "models/parallel/comm/split_plan.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "runtime/common/status_macros.h"

namespace raylight::comm {

absl::StatusOr<SplitPlan> PlanSplit(Communicator& comm, int color, int key) {
  at::Tensor mine = at::tensor({int64_t{color}, int64_t{key}}, at::TensorOptions().dtype(at::kLong))
                        .to(comm.device());
  RL_ASSIGN_OR_RETURN(at::Tensor all, comm.AllGather(mine, 0));
  RL_RETURN_IF_ERROR(comm.Synchronize());
  all = all.cpu().view({comm.size(), 2});
  SplitPlan plan;
  if (color < 0) return plan;
  std::vector<std::tuple<int64_t, int>> members;  // (key, old rank) of my color
  for (int r = 0; r < comm.size(); ++r) {
    if (all[r][0].item<int64_t>() == color) members.emplace_back(all[r][1].item<int64_t>(), r);
  }
  std::sort(members.begin(), members.end());
  plan.member = true;
  plan.new_size = static_cast<int>(members.size());
  for (int i = 0; i < plan.new_size; ++i) {
    if (std::get<1>(members[i]) == comm.rank()) plan.new_rank = i;
  }
  plan.leader = std::get<1>(members.front());
  return plan;
}

}  // namespace raylight::comm
