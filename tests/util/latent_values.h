// A .latent file's values as plain floats, and the two distances the tests compare them by.
// Torch-free: the job tests include protobuf headers (the design's rule 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace raylight::testing_util {

// The float values of a .latent file's latent_tensor, with its shape.
struct LatentValues {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Parses `bytes` (a ComfyUI .latent file, f32); a failure is a test failure and an empty result.
LatentValues ReadLatentValues(const std::string& bytes);

// Largest |a - b|; infinity when the sizes differ.
double MaxAbsDiff(const LatentValues& a, const LatentValues& b);

// ||a - b|| / ||b||; infinity when the sizes differ.
double RelativeL2(const LatentValues& a, const LatentValues& b);

}  // namespace raylight::testing_util
