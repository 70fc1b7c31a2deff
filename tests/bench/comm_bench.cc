// Communicator bandwidth benchmark (not a test): all-to-all and all-gather bus bandwidth through
// raylight::comm, as nccl-tests defines it (busbw = algbw * (n-1)/n; all-to-all algbw = bytes
// per rank / time, all-gather algbw = gathered bytes / time).
//
//   comm_bench --backend=nccl --nprocs=2 --sizes_mib=1,16,64     (GPU machine, one process/GPU)
//   comm_bench --backend=gloo --nprocs=2 --sizes_mib=1,16        (CPU; `make demo`)
//
// With --nprocs the program starts that many copies of itself as ranks (rendezvous through a
// FileStore in a temporary directory) and prints rank 0's report. Rank 0 writes one JSON object
// per measurement to --json (for tests/bench/report.py).
#include <ATen/ATen.h>

#ifdef RAYLIGHT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "models/parallel/comm/gloo_communicator.h"
#include "models/parallel/comm/nccl_communicator.h"
#include "runtime/common/file_store.h"
#include "tests/util/rank_launcher.h"

ABSL_FLAG(std::string, backend, "nccl", "nccl or gloo");
ABSL_FLAG(int, nprocs, 0, "launcher mode: start this many ranks");
ABSL_FLAG(int, rank, -1, "rank (set by the launcher)");
ABSL_FLAG(int, size, 0, "number of ranks (set by the launcher)");
ABSL_FLAG(std::string, store_dir, "", "rendezvous directory (set by the launcher)");
ABSL_FLAG(std::string, sizes_mib, "1,16,64", "payload per rank, MiB, comma-separated");
ABSL_FLAG(int, iters, 20, "timed iterations per measurement");
ABSL_FLAG(int, warmup, 5, "untimed iterations first");
ABSL_FLAG(std::string, json, "", "rank 0 appends one JSON object per measurement here");

namespace raylight {
namespace {

using Clock = std::chrono::steady_clock;

// Starts --nprocs copies of this program as the ranks; prints rank 0's report and the log of
// any rank that failed.
int Launch(int argc, char** argv) {
  std::vector<std::string> args = {std::filesystem::read_symlink("/proc/self/exe").string()};
  for (int i = 1; i < argc; ++i) {
    if (!absl::StartsWith(argv[i], "--nprocs")) args.push_back(argv[i]);
  }
  int failed = 0;
  for (const auto& rank :
       testing_util::LaunchRanks(args, absl::GetFlag(FLAGS_nprocs), std::chrono::minutes(10))) {
    if (rank.rank == 0 || rank.exit_code != 0) std::cout << rank.log;
    if (rank.exit_code != 0) {
      std::cerr << "rank " << rank.rank << " failed with exit code " << rank.exit_code << std::endl;
      failed = 1;
    }
  }
  return failed;
}

// Runs `op` warmup + iters times and returns seconds per call, measured on the device.
template <typename Op>
absl::StatusOr<double> Time(comm::Communicator& comm, Op&& op) {
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) {
    if (absl::Status s = op(); !s.ok()) return s;
  }
  if (absl::Status s = comm.Barrier(); !s.ok()) return s;
  const int iters = absl::GetFlag(FLAGS_iters);
#ifdef RAYLIGHT_HAVE_CUDA
  if (comm.device().is_cuda()) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    auto stream = at::cuda::getCurrentCUDAStream(comm.device().index());
    start.record(stream);
    for (int i = 0; i < iters; ++i) {
      if (absl::Status s = op(); !s.ok()) return s;
    }
    stop.record(stream);
    if (absl::Status s = comm.Synchronize(); !s.ok()) return s;
    return start.elapsed_time(stop) / 1e3 / iters;
  }
#endif
  const auto start = Clock::now();
  for (int i = 0; i < iters; ++i) {
    if (absl::Status s = op(); !s.ok()) return s;
  }
  return std::chrono::duration<double>(Clock::now() - start).count() / iters;
}

int RunRank() {
  const int rank = absl::GetFlag(FLAGS_rank);
  const int size = absl::GetFlag(FLAGS_size);
  const std::string backend = absl::GetFlag(FLAGS_backend);
  auto store = FileStore::Open(absl::GetFlag(FLAGS_store_dir));
  if (!store.ok()) {
    std::cerr << store.status() << std::endl;
    return 1;
  }
  absl::StatusOr<std::unique_ptr<comm::Communicator>> made;
  if (backend == "nccl") {
#ifdef RAYLIGHT_HAVE_CUDA
    c10::cuda::set_device(rank);
#endif
    made = comm::CreateNcclCommunicator(**store, rank, size, rank, comm::NcclOptions{});
  } else {
    comm::GlooOptions options;
    options.hostname = "127.0.0.1";
    made = comm::CreateGlooCommunicator(**store, rank, size, options);
  }
  if (!made.ok()) {
    std::cerr << made.status() << std::endl;
    return 1;
  }
  comm::Communicator& comm = **made;
  std::ofstream json;
  if (rank == 0 && !absl::GetFlag(FLAGS_json).empty()) {
    json.open(absl::GetFlag(FLAGS_json), std::ios::app);
  }
  if (rank == 0) {
    std::cout << absl::StrFormat("%-10s %-12s %10s %12s %12s\n", "backend", "op", "MiB/rank",
                                 "time (us)", "busbw (GB/s)");
  }
  const double bus_factor = static_cast<double>(size - 1) / size;
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_sizes_mib), ',')) {
    int mib = 0;
    if (!absl::SimpleAtoi(text, &mib) || mib <= 0) {
      std::cerr << "bad --sizes_mib entry '" << text << "'" << std::endl;
      return 1;
    }
    const int64_t bytes = int64_t{mib} << 20;
    // bf16 payload, the dtype sequence parallelism moves.
    at::Tensor input =
        at::randn({bytes / 2}, at::TensorOptions().dtype(at::kBFloat16)).to(comm.device());
    struct Measure {
      const char* op;
      double algbw_bytes;  // bytes counted for algbw
      std::function<absl::Status()> run;
    };
    std::vector<Measure> measures = {
        {"all_to_all", static_cast<double>(bytes),
         [&] { return comm.AllToAll(input, 0, 0).status(); }},
        {"all_gather", static_cast<double>(bytes) * size,
         [&] { return comm.AllGather(input, 0).status(); }},
    };
    for (Measure& m : measures) {
      auto seconds = Time(comm, m.run);
      if (!seconds.ok()) {
        std::cerr << m.op << ": " << seconds.status() << std::endl;
        return 1;
      }
      const double busbw = m.algbw_bytes / *seconds * bus_factor / 1e9;
      if (rank != 0) continue;
      std::cout << absl::StrFormat("%-10s %-12s %10d %12.1f %12.1f\n", backend, m.op, mib,
                                   *seconds * 1e6, busbw);
      if (json.is_open()) {
        json << absl::StrFormat(
            "{\"impl\": \"raylight\", \"backend\": \"%s\", \"op\": \"%s\", \"size_mib\": %d, "
            "\"ranks\": %d, \"time_us\": %.3f, \"busbw_GBps\": %.3f}\n",
            backend, m.op, mib, size, *seconds * 1e6, busbw);
      }
    }
  }
  if (absl::Status s = comm.Barrier(); !s.ok()) {
    std::cerr << "final barrier: " << s << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_rank) < 0) {
    if (absl::GetFlag(FLAGS_nprocs) < 1) {
      std::cerr << "give --nprocs=N (launcher) or --rank/--size/--store_dir" << std::endl;
      return 2;
    }
    return raylight::Launch(argc, argv);
  }
  return raylight::RunRank();
}
