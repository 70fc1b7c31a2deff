// The decimal text encoding of Store::Add counters, shared by the Store implementations.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace raylight::store_internal {

// Parses a counter; an absent key ("" with `present` false) is 0.
inline absl::StatusOr<int64_t> ParseCounter(absl::string_view key, absl::string_view text,
                                            bool present) {
  if (!present) return 0;
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("store key '", key, "' holds a value that is not an integer counter"));
  }
  return value;
}

// value + delta, or OutOfRange naming the key when the sum leaves int64 (it used to wrap).
inline absl::StatusOr<int64_t> AddToCounter(absl::string_view key, int64_t value, int64_t delta) {
  int64_t sum = 0;
  if (__builtin_add_overflow(value, delta, &sum)) {
    return absl::OutOfRangeError(absl::StrCat("store key '", key, "': adding ", delta, " to ",
                                              value, " leaves the int64 range"));
  }
  return sum;
}

}  // namespace raylight::store_internal
