// Wan's registration as a family, torch-free (family_registry.h, families.inc).
#pragma once

#include "models/family/family_registry.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

ModelInfo WanModelInfo(const WanConfig& config);
FamilyInspection Inspection();

}  // namespace raylight::models::wan
