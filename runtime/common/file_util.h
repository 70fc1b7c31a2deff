// Whole-file writes that readers never see half done.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace raylight {

// Writes `bytes` to a temporary file beside `path` (unique to this thread) and renames it over
// `path`: a reader sees the old file or the new one, never a partial write.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);

}  // namespace raylight
