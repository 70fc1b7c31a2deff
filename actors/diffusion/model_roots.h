// Where model files may come from: the model roots. The head resolves a job's model name inside
// its roots; each worker checks the files a call names against its own (torch-free, no
// protobuf: both the head's job kinds and the worker's DiffusionActor use it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::actors {

// The files of `model` (a name under a root, or an absolute path inside one): the file itself,
// or a directory's *.safetensors shards in name order. Exposed for tests.
absl::StatusOr<std::vector<std::string>> ResolveModel(const std::string& model,
                                                      const std::vector<std::string>& roots);

// A model a root offers, by the name a job gives it (relative to its root).
struct ModelEntry {
  std::string name;
  int64_t bytes = 0;
  int files = 0;
  bool lora = false;  // a LoRA file (models/core/lora_keys.h), not a model
  std::string family;  // models/family/model_info.h's, for single-file models it reads
};

// The models in `roots`, by name, for front ends' choices: every *.safetensors and *.gguf file at
// most `max_depth` directories down (symlinks followed while they stay inside the root), except
// that a directory of shards (`*-of-*.safetensors`) is one model; the first root wins a name, as in
// ResolveModel. Stops after `max_entries` directory entries (a root at / must not stall the
// head). Roots that do not exist are skipped.
std::vector<ModelEntry> ListModels(const std::vector<std::string>& roots, int max_depth = 4,
                                   int max_entries = 20000);

// The worker's own check of the files a call names (the head resolved them, but a caller that
// reaches a worker directly must get no further): each exists, is a regular file, and lies
// inside one of `roots` after symlinks; no roots refuses everything. Errors name `field` and
// never quote a file's contents.
absl::Status CheckModelFiles(const std::string& field, const std::vector<std::string>& files,
                             const std::vector<std::string>& roots);

}  // namespace raylight::actors
