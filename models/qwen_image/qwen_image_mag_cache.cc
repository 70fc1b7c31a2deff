#include "models/qwen_image/qwen_image_mag_cache.h"

#include <vector>

namespace raylight::models::qwen_image {
namespace {

// MagCache4QwenImage's ratios (magcache_generate.py, its leading [1.0] * 2 included): cond and
// uncond of each step in turn (the authors calibrated one curve for both).
constexpr double kQwenImage[] = {
    1.0,     1.0,     1.64062, 1.64062, 1.45312, 1.45312, 1.1875,  1.1875,  1.17188, 1.17188,
    1.05469, 1.05469, 1.21094, 1.21094, 1.10938, 1.10938, 1.11719, 1.11719, 1.13281, 1.13281,
    1.11719, 1.11719, 1.07812, 1.07812, 1.07031, 1.07031, 1.08594, 1.08594, 1.08594, 1.08594,
    1.07812, 1.07812, 1.03906, 1.03906, 1.04688, 1.04688, 1.07812, 1.07812, 1.07031, 1.07031,
    1.03125, 1.03125, 1.07812, 1.07812, 1.04688, 1.04688, 1.04688, 1.04688, 1.04688, 1.04688,
    1.03906, 1.03906, 1.01562, 1.01562, 1.03125, 1.03125, 1.02344, 1.02344, 1.02344, 1.02344,
    1.02344, 1.02344, 1.03906, 1.03906, 1.0,     1.0,     1.01562, 1.01562, 1.0,     1.0,
    0.99219, 0.99219, 1.00781, 1.00781, 0.98047, 0.98047, 0.95703, 0.95703, 0.96875, 0.96875,
    0.99219, 0.99219, 0.92578, 0.92578, 0.92578, 0.92578, 0.90625, 0.90625, 0.85938, 0.85938,
    0.80469, 0.80469, 0.87891, 0.87891, 0.75,    0.75,    0.60938, 0.60938, 0.55078, 0.55078,
};

}  // namespace

std::optional<MagCacheSettings> PublishedQwenImageMagCache(const flux::FluxConfig& config) {
  if (config.name != "qwen-image") return std::nullopt;
  return MagCacheSettings{
      .threshold = 0.06,
      .max_skips = 2,
      .retention_ratio = 0.2,
      .ratios = std::vector<double>(std::begin(kQwenImage), std::end(kQwenImage))};
}

}  // namespace raylight::models::qwen_image
