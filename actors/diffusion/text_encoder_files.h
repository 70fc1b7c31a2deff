// Which text encoder a job's prompt goes through (torch-free, no protobuf: the head resolves and
// checks it when it plans the job). A job names one under the model roots, or leaves it to the
// roots' ComfyUI folder `text_encoders/`, where exactly one umT5 file must be.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::actors {

// The encoder's file: `name` resolved under `roots` (a single safetensors file), or, for an
// empty name, the one umT5 file among the *.safetensors of `<root>/text_encoders/`. Its header
// must hold a umT5 encoder (models/text/umt5_keys.h) `text_dim` wide. Errors are
// InvalidArgument naming `field`.
absl::StatusOr<std::string> ResolveTextEncoder(const std::string& field, const std::string& name,
                                               const std::vector<std::string>& roots,
                                               int64_t text_dim);

}  // namespace raylight::actors
