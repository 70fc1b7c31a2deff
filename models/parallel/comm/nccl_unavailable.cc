// Compiled instead of nccl_communicator.cc when the build has no CUDA/NCCL (RAYLIGHT_WITH_CUDA
// off, or no toolkit found): the NCCL backend then reports that it is not part of this build.
#include "absl/strings/str_cat.h"
#include "models/parallel/comm/nccl_communicator.h"

namespace raylight::comm {

bool NcclAvailable() { return false; }

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(Store&, int, int, int,
                                                                     const NcclOptions& options) {
  return absl::FailedPreconditionError(
      absl::StrCat("NCCL group '", options.group_name,
                   "': this build has no CUDA/NCCL backend (configure with RAYLIGHT_WITH_CUDA=ON "
                   "on a machine with the CUDA toolkit)"));
}

}  // namespace raylight::comm
