#include "tests/util/rank_launcher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"

namespace raylight::testing_util {

std::vector<RankOutcome> LaunchRanks(const std::vector<std::string>& argv, int size,
                                     std::chrono::milliseconds deadline, std::vector<int> ranks) {
  if (ranks.empty()) {
    for (int r = 0; r < size; ++r) ranks.push_back(r);
  }
  TempDir dir("raylight_ranks_");
  std::vector<RankOutcome> outcomes;
  std::vector<ChildProcess> children;
  std::vector<size_t> child_outcome;  // index into outcomes of each started child
  for (int rank : ranks) {
    std::vector<std::string> args = argv;
    args.push_back(absl::StrCat("--rank=", rank));
    args.push_back(absl::StrCat("--size=", size));
    args.push_back(absl::StrCat("--store_dir=", dir.path(), "/store"));
    auto child = ChildProcess::Spawn(args, absl::StrCat(dir.path(), "/rank", rank, ".log"));
    outcomes.push_back({rank, -1, child.ok() ? "" : child.status().ToString()});
    if (child.ok()) {
      children.push_back(std::move(*child));
      child_outcome.push_back(outcomes.size() - 1);
    }
  }
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (size_t i = 0; i < children.size(); ++i) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    auto code = children[i].Wait(std::max(left, std::chrono::milliseconds(1)));
    RankOutcome& outcome = outcomes[child_outcome[i]];
    if (code.ok()) outcome.exit_code = *code;
    outcome.log =
        absl::StrCat(code.ok() ? "" : code.status().ToString() + "\n", children[i].ReadLog());
  }
  return outcomes;
}

}  // namespace raylight::testing_util
