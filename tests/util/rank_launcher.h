// Starts the ranks of a group as separate processes of one program, for multi-process tests and
// benchmarks: each gets --rank, --size and a --store_dir (a FileStore in a fresh temporary
// directory shared by the ranks), and its output goes to a log collected at the end.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace raylight::testing_util {

struct RankOutcome {
  int rank;
  int exit_code;    // -1: could not be started, or killed at the deadline (see log)
  std::string log;  // the process's stdout and stderr
};

// Runs `argv` (program first) once for each rank in `ranks` (all of 0..size-1 when empty) and
// waits for all of them within `deadline`, killing those still running then.
std::vector<RankOutcome> LaunchRanks(const std::vector<std::string>& argv, int size,
                                     std::chrono::milliseconds deadline,
                                     std::vector<int> ranks = {});

}  // namespace raylight::testing_util
