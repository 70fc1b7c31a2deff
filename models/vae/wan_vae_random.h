// Random Wan VAE weights (tests, benchmarks, `raylight-vae make-random`, `make demo`): every
// weight of a config by internal name, drawn so that a decode neither explodes nor saturates
// through its 30-odd convolutions: weights with variance 1 / fan-in, norm gains 1 + 0.2 N(0, 1),
// biases 0.05 N(0, 1).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>

#include "models/vae/wan_vae_config.h"

namespace raylight::models::vae {

std::map<std::string, at::Tensor> RandomWanVaeWeights(const WanVaeConfig& config, uint64_t seed);

}  // namespace raylight::models::vae
