// Runs a helper program (ip, a Python reference script) to completion from a test.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace raylight::testing_util {

// Runs `argv` (argv[0] an absolute path: no PATH search) with stdout and stderr in `log_path`.
// OK on exit 0; otherwise an error naming the command and how it ended, with the log's content.
absl::Status RunToCompletion(const std::vector<std::string>& argv, const std::string& log_path,
                             std::chrono::seconds timeout);

}  // namespace raylight::testing_util
