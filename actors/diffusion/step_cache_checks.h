// The head's checks of a SampleJob's `cache` (TeaCache, MagCache, EasyCache: SampleJob.cache),
// before anything is queued: a known kind, only that kind's settings, numbers in range, what
// the kind calibrates for the model (the published numbers or the job's own), and no mesh or
// placement whose ranks would decide apart. Errors are InvalidArgument naming the field.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "models/family/model_info.h"
#include "models/wan/wan_config.h"

namespace raylight::v1 {
class SampleJob;
}

namespace raylight::actors {

// A Wan job's: TeaCache as TeaCache4Wan2.1 runs it (the timestep modulation), MagCache with the
// authors' curves, EasyCache; `two_experts`: Wan 2.2 A14B's, calibrated by nobody for TeaCache.
absl::Status CheckWanStepCache(const v1::SampleJob& job, const models::wan::WanConfig& config,
                               bool two_experts);

// A job of any other family at width x height pixels: MagCache where the family's forward
// caches steps (ModelInfo.caches_steps), TeaCache where it measures its own change
// (ModelInfo.tea_caches), EasyCache on every family.
absl::Status CheckFamilyStepCache(const v1::SampleJob& job, const models::ModelInfo& info,
                                  int64_t width, int64_t height);

}  // namespace raylight::actors
