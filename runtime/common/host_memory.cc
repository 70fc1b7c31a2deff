#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <string>

#include "runtime/common/gpu_info.h"

namespace raylight {

int64_t HostRssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0;
  int64_t resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

namespace {

// The "<key>: <n> kB" line of a /proc file, in bytes, or -1.
int64_t KibLine(const char* path, const std::string& key) {
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    int64_t kib = 0;
    if (line.rfind(key + ":", 0) == 0 &&
        sscanf(line.c_str() + key.size() + 1, " %" SCNd64, &kib) == 1) {
      return kib * 1024;
    }
  }
  return -1;
}

}  // namespace

int64_t ProcessStatusBytes(const std::string& key) { return KibLine("/proc/self/status", key); }

int64_t HostAvailableBytes() {
  return std::max<int64_t>(0, KibLine("/proc/meminfo", "MemAvailable"));
}

}  // namespace raylight
