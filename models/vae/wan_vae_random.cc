#include "models/vae/wan_vae_random.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "models/vae/wan_vae_keys.h"

namespace raylight::models::vae {

std::map<std::string, at::Tensor> RandomWanVaeWeights(const WanVaeConfig& config, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  std::map<std::string, at::Tensor> weights;
  for (const auto& [name, shape] : WanVaeWeightShapes(config)) {
    const at::Tensor normal = at::randn(shape, generator);
    if (name.ends_with(".gamma")) {
      weights[name] = 1 + 0.2 * normal;
    } else if (name.ends_with(".bias")) {
      weights[name] = 0.05 * normal;
    } else {
      int64_t fan_in = 1;
      for (size_t d = 1; d < shape.size(); ++d) fan_in *= shape[d];
      weights[name] = normal / std::sqrt(static_cast<double>(fan_in));
    }
  }
  return weights;
}

}  // namespace raylight::models::vae
