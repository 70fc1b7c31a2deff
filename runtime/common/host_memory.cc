#include <unistd.h>

#include <fstream>

#include "runtime/common/gpu_info.h"

namespace raylight {

int64_t HostRssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0;
  int64_t resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace raylight
