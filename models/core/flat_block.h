// One block's weights laid end to end in a flat byte buffer: the unit that the placements which
// move weights (FSDP gathers, layer-swap copies) move in one transfer.
//
// Each tensor is stored in the dtype it has on the device: the compute dtype (or fp32 for the
// weights a model keeps in fp32), except fp8 scaled weights, which stay fp8 (half of bf16's bytes
// to move), and GGUF quantised weights, which stay in their blocks; both are dequantised after the
// transfer, so FSDP shards and swapped blocks move the stored bytes. Every tensor starts 16-byte
// aligned, so every view(dtype) of the buffer is aligned. Views of a filled buffer are the block's
// weights with no copy; only the fp8 tensors are materialised. Under fp8 compute a block linear
// is stored as fp8 compute holds it (models/core/fp8_linear.h): its e4m3 values, quantised per
// row when the layout is filled, then its row scales, both used as they arrive.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/checkpoint.h"
#include "models/core/weights.h"

namespace raylight::models {

class FlatBlock {
 public:
  // Adds `tensor` (named `name` within the block; `fp32`: kept in fp32) at the end of the layout;
  // returns how many entries it took (2 for an fp8-compute linear: values and scales).
  int Add(std::string name, const CheckpointTensor& tensor, bool fp32,
          const PlacementOptions& options);
  // Rounds the layout's size up to a multiple of `multiple` (FSDP: of the group size times the
  // alignment, so that every rank's shard is equal and aligned).
  void PadTo(int64_t multiple);
  int64_t bytes() const { return bytes_; }

  // Writes the layout's bytes [begin, begin + out.numel()) into `out` (a CPU kByte tensor),
  // converting each source tensor to its stored dtype; bytes no tensor covers are zero.
  // `sources`: the tensors passed to Add, in order, each once per entry it took (views of the
  // mapped checkpoint, which the layout outlives, so it does not keep them).
  void Fill(const std::vector<const CheckpointTensor*>& sources, int64_t begin,
            at::Tensor& out) const;
  // The block's weights over a filled buffer (a kByte tensor of bytes() on `device`): views for
  // the tensors stored as computed, materialised copies for the fp8 and GGUF ones.
  WeightSet Unflatten(const at::Tensor& buffer, at::Device device) const;

 private:
  // What an entry's bytes are: the tensor's (stored or in its stored dtype), or fp8 compute's
  // e4m3 values or row scales of it.
  enum class Role { kTensor, kFp8Values, kFp8Scales };
  struct Entry {
    std::string name;
    Role role = Role::kTensor;
    int64_t offset = 0;
    int64_t bytes = 0;
    at::ScalarType stored_dtype;                 // in the buffer
    at::ScalarType compute_dtype;                // what Unflatten hands out
    at::ScalarType quantised_from = at::kFloat;  // kFp8*: the dtype rows are quantised from
    std::vector<int64_t> shape;
    // fp8 or GGUF kept as stored: the source's scale / blocks' type and LoRA patches (on the
    // device), with no data; Unflatten decodes the buffer's bytes with it.
    std::optional<CheckpointTensor> encoding;
  };
  // Places `entry` at the next aligned offset of the layout.
  void Append(Entry entry);
  // Bytes [from, to) of an fp8-compute entry (values or scales) of `source`, made from the rows
  // they cover.
  at::Tensor Fp8RowsOf(const Entry& entry, const CheckpointTensor& source, int64_t from,
                       int64_t to) const;

  std::vector<Entry> entries_;
  int64_t bytes_ = 0;
};

// A checkpoint split for the placements that move blocks: the non-block weights placed on the
// device, every block's tensors laid out (unpadded), and each layout's sources for Fill.
struct FlatModel {
  WeightSet globals;
  std::vector<FlatBlock> blocks;
  std::vector<std::vector<const CheckpointTensor*>> sources;  // views of `checkpoint`
};
absl::StatusOr<FlatModel> FlattenBlocks(const Checkpoint& checkpoint, const BlockLayout& layout,
                                        const PlacementOptions& options);

}  // namespace raylight::models
