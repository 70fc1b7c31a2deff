// Builds without CUDA: no GPUs.
#include "runtime/common/gpu_info.h"

namespace raylight {

std::vector<GpuDevice> DiscoverGpus() { return {}; }

absl::StatusOr<std::unique_ptr<DeviceMemoryProbe>> DeviceMemoryProbe::Open(int gpu_index) {
  return absl::UnimplementedError("built without CUDA");
}

}  // namespace raylight
