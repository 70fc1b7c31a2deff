// The short dtype names jobs use and the models list shows ("bf16", "f16", "f32").
#pragma once

#include <c10/core/ScalarType.h>

namespace raylight::actors {

inline const char* DtypeName(at::ScalarType dtype) {
  return dtype == at::kBFloat16 ? "bf16" : dtype == at::kHalf ? "f16" : "f32";
}

}  // namespace raylight::actors
