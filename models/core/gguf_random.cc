#include "models/core/gguf_random.h"

#include <vector>

#include "models/core/gguf.h"

namespace raylight::models {
namespace {

// Byte offsets of each block's float16 scale fields (d, and dmin / m where the type has one).
std::vector<int64_t> ScaleFields(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      return {0, 2};
    case GgmlType::kQ2_K:
      return {80, 82};
    case GgmlType::kQ3_K:
      return {108};
    case GgmlType::kQ6_K:
      return {208};
    default:
      return {0};
  }
}

}  // namespace

at::Tensor RandomGgufBlocks(GgmlType type, int64_t values, at::Generator& generator,
                            at::Device device) {
  const GgmlTypeTraits& traits = TraitsOf(type);
  const int64_t blocks = values / traits.block_elements;
  at::Tensor bytes = at::randint(0, 256, {blocks, traits.block_bytes}, generator,
                                 at::TensorOptions().dtype(at::kByte).device(device));
  if (type == GgmlType::kF32 || type == GgmlType::kF16 || type == GgmlType::kBF16) {
    return bytes.flatten().cpu();  // plain types take values, not blocks: callers do not ask
  }
  for (int64_t offset : ScaleFields(type)) {
    at::Tensor scale =
        (at::randn({blocks}, generator, at::TensorOptions().device(device)).abs() * 1e-4)
            .to(at::kHalf);
    bytes.narrow(1, offset, 2).copy_(scale.view(at::kByte).view({blocks, 2}));
  }
  return bytes.flatten().cpu();
}

}  // namespace raylight::models
