#include "models/flux/flux_tea_cache.h"

namespace raylight::models::flux {

std::optional<TeaCacheSettings> PublishedFluxTeaCache(const FluxConfig& config) {
  if (config.name != "flux1-dev") return std::nullopt;
  // TeaCache4FLUX's teacache_flux.py, highest power first (numpy.poly1d).
  return TeaCacheSettings{.threshold = 0.4,
                          .coefficients = {4.98651651e+02, -2.83781631e+02, 5.58554382e+01,
                                           -3.82021401e+00, 2.64230861e-01}};
}

}  // namespace raylight::models::flux
