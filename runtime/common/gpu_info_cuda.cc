// The GPU build: GPUs through the CUDA runtime, memory use through NVML (dlopen'ed from the
// driver, so nothing links against it and machines without a driver still run).
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include "absl/strings/str_cat.h"
#include "runtime/common/gpu_info.h"

namespace raylight {
namespace {

// The few NVML entry points used, with their stable C ABI (nvml.h is not in the toolkit).
using NvmlDevice = void*;
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
using NvmlInitFn = int (*)();
using NvmlHandleByPciFn = int (*)(const char*, NvmlDevice*);
using NvmlMemoryFn = int (*)(NvmlDevice, NvmlMemory*);

class NvmlProbe final : public DeviceMemoryProbe {
 public:
  NvmlProbe(NvmlMemoryFn memory, NvmlDevice device) : memory_(memory), device_(device) {}
  absl::StatusOr<DeviceMemory> Read() override {
    NvmlMemory info{};
    if (int rc = memory_(device_, &info); rc != 0) {
      return absl::UnavailableError(absl::StrCat("nvmlDeviceGetMemoryInfo failed: ", rc));
    }
    return DeviceMemory{static_cast<int64_t>(info.used), static_cast<int64_t>(info.total)};
  }

 private:
  NvmlMemoryFn memory_;
  NvmlDevice device_;
};

}  // namespace

std::vector<GpuDevice> DiscoverGpus() {
  std::vector<GpuDevice> gpus;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: a CPU machine
    return gpus;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp properties;
    if (cudaGetDeviceProperties(&properties, i) != cudaSuccess) continue;
    char bus_id[32] = {};
    cudaDeviceGetPCIBusId(bus_id, sizeof(bus_id), i);
    gpus.push_back({i, properties.name, static_cast<int64_t>(properties.totalGlobalMem), bus_id});
  }
  return gpus;
}

absl::StatusOr<std::unique_ptr<DeviceMemoryProbe>> DeviceMemoryProbe::Open(int gpu_index) {
  char bus_id[32] = {};
  if (cudaDeviceGetPCIBusId(bus_id, sizeof(bus_id), gpu_index) != cudaSuccess) {
    cudaGetLastError();
    return absl::NotFoundError(absl::StrCat("no CUDA device ", gpu_index));
  }
  void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) return absl::UnavailableError("libnvidia-ml.so.1 not found");
  auto init = reinterpret_cast<NvmlInitFn>(dlsym(library, "nvmlInit_v2"));
  auto by_pci =
      reinterpret_cast<NvmlHandleByPciFn>(dlsym(library, "nvmlDeviceGetHandleByPciBusId_v2"));
  auto memory = reinterpret_cast<NvmlMemoryFn>(dlsym(library, "nvmlDeviceGetMemoryInfo"));
  if (init == nullptr || by_pci == nullptr || memory == nullptr) {
    return absl::UnavailableError("libnvidia-ml.so.1 lacks the needed entry points");
  }
  if (int rc = init(); rc != 0) return absl::UnavailableError(absl::StrCat("nvmlInit: ", rc));
  NvmlDevice device = nullptr;
  if (int rc = by_pci(bus_id, &device); rc != 0) {
    return absl::NotFoundError(absl::StrCat("NVML has no device at ", bus_id, ": ", rc));
  }
  return std::make_unique<NvmlProbe>(memory, device);
}

}  // namespace raylight
