#include "models/flux/flux_mag_cache.h"

#include <vector>

namespace raylight::models::flux {
namespace {

// MagCache4FLUX's mag_ratios (magcache_flux.py, its leading 1.0 included): one per step of their
// 28; each stands for both branches here (cond, uncond in turn), as a job with CFG runs two.
constexpr double kFluxDev[] = {1.0,     1.21094, 1.11719, 1.07812, 1.0625,  1.03906, 1.03125,
                               1.03906, 1.02344, 1.03125, 1.02344, 0.98047, 1.01562, 1.00781,
                               1.0,     1.00781, 1.0,     1.00781, 1.0,     1.0,     0.99609,
                               0.99609, 0.98047, 0.98828, 0.96484, 0.95703, 0.93359, 0.89062};

}  // namespace

std::optional<MagCacheSettings> PublishedFluxMagCache(const FluxConfig& config) {
  if (config.name != "flux1-dev") return std::nullopt;
  std::vector<double> ratios;
  for (double r : kFluxDev) {
    ratios.push_back(r);
    ratios.push_back(r);
  }
  return MagCacheSettings{.threshold = 0.24,
                          .max_skips = 5,
                          .retention_ratio = 0.1,
                          .ratios = std::move(ratios),
                          .rule = MagCacheRule::kFlux};
}

}  // namespace raylight::models::flux
