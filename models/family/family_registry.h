// A model family, as everything outside its folder sees it without torch: its name and how it
// recognises and describes its checkpoints. The built-in families are listed in families.inc
// (one line each); a program adds its own with RegisterFamily before it starts serving (the
// toy family of tests/family does). The torch side of a family (loading, its forward) registers
// through family_models.h.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/weight_shapes.h"
#include "models/family/model_info.h"

namespace raylight::models {

struct FamilyInspection {
  std::string name;
  // The family's internal name for a checkpoint key (nullopt: not one of its names). Every
  // family reads the same raw header; each names it its own way.
  std::function<std::optional<std::string>(const std::string& raw)> normalize_key;
  // Whether the checkpoint (in the family's names) is the family's: its unmistakable keys.
  std::function<bool(const KeyShapes& shapes)> claims;
  // Detection and the shape checks of a claimed checkpoint; errors name the key.
  std::function<absl::StatusOr<ModelInfo>(const KeyShapes& shapes)> inspect;
};

// Adds a family after the built-in ones. Call before any thread inspects models (the registry is
// read without a lock); a name already registered is an error.
absl::Status RegisterFamily(FamilyInspection family);

// The built-in families (families.inc order), then the registered ones.
const std::vector<FamilyInspection>& Families();

// The family called `name`, or null.
const FamilyInspection* FindFamily(const std::string& name);

}  // namespace raylight::models
