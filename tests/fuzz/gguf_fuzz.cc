// libFuzzer target for the GGUF reader (models/core/gguf.cc): any byte string must give either an
// error or a header whose every invariant holds — never a crash, a hang, an out-of-bounds read
// (AddressSanitizer) or undefined behaviour (UBSan).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "models/core/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace raylight::models;
  const absl::string_view buffer(reinterpret_cast<const char*>(data), size);
  auto header = ParseGguf(buffer, "fuzz");
  if (!header.ok()) return 0;
  // What the loader relies on: every tensor inside the buffer, aligned, sized by its type and
  // shape, and no two overlapping.
  if (header->data_offset > size) std::abort();
  const uint64_t data_bytes = size - header->data_offset;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const GgufTensorInfo& tensor : header->tensors) {
    if (tensor.offset % header->alignment != 0) std::abort();
    if (tensor.offset > data_bytes || tensor.bytes > data_bytes - tensor.offset) std::abort();
    const GgmlTypeTraits& traits = TraitsOf(tensor.type);
    if (tensor.numel() % traits.block_elements != 0) std::abort();
    if (static_cast<uint64_t>(GgmlBytes(tensor.type, tensor.numel())) != tensor.bytes) std::abort();
    volatile char sink = 0;  // touch the last byte: ASan reports any read past the buffer
    if (tensor.bytes > 0) sink = buffer[header->data_offset + tensor.offset + tensor.bytes - 1];
    (void)sink;
    ranges.emplace_back(tensor.offset, tensor.offset + tensor.bytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) std::abort();
  }
  return 0;
}
