// libFuzzer target for the safetensors parser (models/core/safetensors.cc): any byte string must
// give either an error or a header whose every invariant holds — never a crash, a hang, an
// out-of-bounds read (AddressSanitizer) or undefined behaviour (UBSan).
#include <cstdint>
#include <cstdlib>

#include "models/core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace raylight::models;
  const absl::string_view buffer(reinterpret_cast<const char*>(data), size);
  auto header = ParseSafetensors(buffer, "fuzz");
  if (!header.ok()) return 0;
  // What the loader relies on: every tensor inside the buffer, sizes consistent, no overlap.
  if (header->data_offset > size) std::abort();
  uint64_t covered = 0;
  for (const StTensorInfo& tensor : header->tensors) {
    if (tensor.begin != covered || tensor.end < tensor.begin) std::abort();
    if (tensor.end > size - header->data_offset) std::abort();
    if (tensor.end - tensor.begin !=
        static_cast<uint64_t>(tensor.numel()) * StDtypeSize(tensor.dtype)) {
      std::abort();
    }
    // Touch the bytes: ASan reports any read past the buffer.
    volatile char sink = 0;
    if (tensor.end > tensor.begin) sink = buffer[header->data_offset + tensor.end - 1];
    (void)sink;
    covered = tensor.end;
  }
  if (covered != size - header->data_offset) std::abort();
  return 0;
}
