// Rounding sizes up to an alignment (buffers, windows, IPC granules).
#pragma once

#include <cstdint>

namespace raylight {

// `value` rounded up to a multiple of `multiple` (> 0).
constexpr int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace raylight
