#include "models/family/family_registry.h"

#include "absl/strings/str_cat.h"

namespace raylight::models {

#define RAYLIGHT_FAMILY(name)    \
  namespace name {               \
  FamilyInspection Inspection(); \
  }
#include "models/family/families.inc"
#undef RAYLIGHT_FAMILY

namespace {

std::vector<FamilyInspection>& Registry() {
  static auto* families = new std::vector<FamilyInspection>{
#define RAYLIGHT_FAMILY(name) name::Inspection(),
#include "models/family/families.inc"
#undef RAYLIGHT_FAMILY
  };
  return *families;
}

}  // namespace

absl::Status RegisterFamily(FamilyInspection family) {
  if (family.name.empty() || !family.normalize_key || !family.claims || !family.inspect) {
    return absl::InvalidArgumentError(
        absl::StrCat("family '", family.name, "': a name and all three functions are required"));
  }
  if (FindFamily(family.name) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("family '", family.name, "' is registered"));
  }
  Registry().push_back(std::move(family));
  return absl::OkStatus();
}

const std::vector<FamilyInspection>& Families() { return Registry(); }

const FamilyInspection* FindFamily(const std::string& name) {
  for (const FamilyInspection& family : Registry()) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

}  // namespace raylight::models
