#include "tests/util/run_command.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/common/child_process.h"
#include "tests/util/read_file.h"

namespace raylight::testing_util {

absl::Status RunToCompletion(const std::vector<std::string>& argv, const std::string& log_path,
                             std::chrono::seconds timeout) {
  SpawnOptions options;
  options.log_path = log_path;
  auto child = ChildProcess::Spawn(argv, options);
  if (!child.ok()) return child.status();
  auto code = child->Wait(timeout);
  if (!code.ok()) return code.status();
  if (*code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "), "` failed (",
                                          DescribeExit(*code), "):\n", ReadFileOrEmpty(log_path)));
}

}  // namespace raylight::testing_util
