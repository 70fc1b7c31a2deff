// What a Wan checkpoint and a conditioning file are, from their safetensors headers alone: no
// tensor data read, no libtorch. The head validates a job with these before queueing it (model
// variant, heads for the mesh, conditioning shapes); the worker reads the same rules again when
// it loads (wan_loader.h, wan_conditioning.h), so the two can never disagree.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/safetensors.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

// The config of the checkpoint in `paths` (one file or shards), detected from key names and
// shapes (wan_keys.h DetectWanConfig). Malformed files fail with the parser's error and path.
absl::StatusOr<WanConfig> InspectWanCheckpoint(const std::vector<std::string>& paths);

// Checks a conditioning file's tensors (names, ranks, widths, dtypes) against `config`; `where`
// starts every message ("conditioning <path>"). Values (NaN, infinity) are checked on reading.
absl::Status CheckWanConditioningHeader(const StHeader& header, const std::string& where,
                                        const WanConfig& config);

// CheckWanConditioningHeader on an in-memory file (a job's payload); `source` names it.
absl::Status CheckWanConditioningBytes(absl::string_view bytes, const std::string& source,
                                       const WanConfig& config);

}  // namespace raylight::models::wan
