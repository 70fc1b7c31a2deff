#include "runtime/common/ids.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace raylight {

std::string RandomId(absl::string_view prefix) {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return absl::StrCat(prefix, absl::StrFormat("%016x", generator()));
}

}  // namespace raylight
