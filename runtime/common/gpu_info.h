// What a machine has: GPUs (through the CUDA runtime in the GPU build, which creates no CUDA
// context), device memory in use (through NVML, loaded at run time: no context either), and the
// process's resident host memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight {

struct GpuDevice {
  int index = 0;  // CUDA ordinal
  std::string name;
  int64_t total_memory_bytes = 0;
  std::string pci_bus_id;
};

// The visible GPUs; empty without a driver or device (and in builds without CUDA).
std::vector<GpuDevice> DiscoverGpus();

struct DeviceMemory {
  int64_t used_bytes = 0;  // device-wide
  int64_t total_bytes = 0;
};

// Reads one GPU's memory use. Open fails where NVML or the device is missing.
class DeviceMemoryProbe {
 public:
  virtual ~DeviceMemoryProbe() = default;
  static absl::StatusOr<std::unique_ptr<DeviceMemoryProbe>> Open(int gpu_index);
  virtual absl::StatusOr<DeviceMemory> Read() = 0;
};

// This process's resident set size.
int64_t HostRssBytes();
// A memory line of /proc/self/status ("VmHWM": peak resident, "RssAnon": heap) in bytes, or -1.
int64_t ProcessStatusBytes(const std::string& key);
// The machine's available memory (MemAvailable), or 0 when unknown.
int64_t HostAvailableBytes();

}  // namespace raylight
