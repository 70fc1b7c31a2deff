// Random identifiers for nodes, worker instances, actors, groups and callers.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace raylight {

// `prefix` followed by 16 random hex digits, e.g. "actor-3f9c0a1b2d4e5f60".
std::string RandomId(absl::string_view prefix);

}  // namespace raylight
