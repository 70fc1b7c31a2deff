#include "models/core/latent_patches.h"

namespace raylight::models {

at::Tensor UnfoldLatentPatches(const at::Tensor& x, int64_t patch) {
  const int64_t batch = x.size(0), channels = x.size(1) / (patch * patch);
  const int64_t height = x.size(2), width = x.size(3);
  return x.reshape({batch, channels, patch, patch, height, width})
      .permute({0, 1, 4, 2, 5, 3})
      .reshape({batch, channels, height * patch, width * patch});
}

at::Tensor FoldLatentPatches(const at::Tensor& x, int64_t patch) {
  const int64_t batch = x.size(0), channels = x.size(1);
  const int64_t height = x.size(2) / patch, width = x.size(3) / patch;
  return x.reshape({batch, channels, height, patch, width, patch})
      .permute({0, 1, 3, 5, 2, 4})
      .reshape({batch, channels * patch * patch, height, width});
}

}  // namespace raylight::models
