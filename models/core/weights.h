// Where a model's weights live is decided outside the model (DESIGN.md, "Compute"): the model
// asks a WeightProvider for one block's weights just before it runs the block and gives them back
// right after. The resident provider keeps everything on the device; the later placements (FSDP
// shards gathered one block ahead, layer swap from pinned host memory) implement the same calls
// with prefetch doing the real work.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/core/checkpoint.h"
#include "models/core/staged_upload.h"

namespace raylight::models {

// Named tensors of one block (names relative to the block, "self_attn.q.weight") or of the
// non-block part of a model ("patch_embedding.weight").
class WeightSet {
 public:
  void Set(std::string name, at::Tensor tensor) { tensors_[std::move(name)] = std::move(tensor); }
  // The tensor, or an undefined one when absent (models validate names at load time).
  const at::Tensor& Get(absl::string_view name) const;
  bool Has(absl::string_view name) const { return tensors_.contains(name); }
  int64_t bytes() const;
  const absl::flat_hash_map<std::string, at::Tensor>& tensors() const { return tensors_; }

 private:
  absl::flat_hash_map<std::string, at::Tensor> tensors_;
};

struct PlacementOptions {
  at::Device device = at::kCPU;
  at::ScalarType compute_dtype = at::kFloat;
  // fp8 scaled weights stay fp8 and GGUF weights stay in their quantisation blocks in memory, and
  // are dequantised per block at Acquire (half the memory of bf16 or less); false dequantises
  // everything at load.
  bool keep_fp8 = true;
  // fp8 compute (models/core/fp8_linear.h): every block linear weight (IsFp8Linear) held as e4m3
  // with a per-row scale ("<name>_scale") for the model's fp8 GEMMs, made once at load; FSDP and
  // layer swap move them so (flat_block.h).
  bool fp8_compute = false;
  // Weights the model computes in fp32 whatever the compute dtype (modulation tables, time
  // embedding): stored as fp32.
  std::function<bool(const std::string& name)> keep_fp32;
};

class WeightProvider {
 public:
  virtual ~WeightProvider() = default;
  virtual int num_blocks() const = 0;
  // Non-block weights, ready for compute for the provider's whole life.
  const WeightSet& globals() const { return globals_; }
  // Block `index`'s weights, ready for compute on the current stream until Release(index).
  virtual absl::StatusOr<const WeightSet*> Acquire(int index) = 0;
  virtual void Release(int index) = 0;
  // A hint that Acquire(index) comes soon (placements that move weights start moving them).
  virtual void Prefetch(int index) { (void)index; }
  at::Device device() const { return options_.device; }
  at::ScalarType compute_dtype() const { return options_.compute_dtype; }
  const PlacementOptions& options() const { return options_; }

 protected:
  explicit WeightProvider(PlacementOptions options) : options_(std::move(options)) {}
  // OutOfRange unless 0 <= index < num_blocks(): every provider's Acquire starts with it.
  absl::Status CheckBlock(int index) const;

  const PlacementOptions options_;
  WeightSet globals_;  // filled by the provider's Create
};

// Splits internal names into blocks: "<prefix><i>.<rest>" belongs to block i as "<rest>". A model
// with blocks of several kinds lists one segment per kind, in order, and the indices run on
// across them (Flux: "double_blocks.0" .. "double_blocks.18" are blocks 0-18, "single_blocks.0"
// is block 19): placements see one flat sequence of blocks.
struct BlockSegment {
  std::string prefix;  // "blocks."
  int count = 0;
};
struct BlockLayout {
  std::vector<BlockSegment> segments;
  // One segment of `count` blocks named "<prefix><i>.".
  static BlockLayout Uniform(int count, std::string prefix = "blocks.") {
    return BlockLayout{{BlockSegment{std::move(prefix), count}}};
  }
  int num_blocks() const {
    int total = 0;
    for (const BlockSegment& segment : segments) total += segment.count;
    return total;
  }
};

// The dtype a checkpoint tensor is kept in on the device: fp8 scaled block weights stay fp8
// (`options.keep_fp8`; dequantised per block on use), weights kept in fp32 (`fp32`) are fp32,
// everything else the compute dtype.
at::ScalarType PlacedDtype(const CheckpointTensor& tensor, bool in_block, bool fp32,
                           const PlacementOptions& options);

// Whether a checkpoint tensor is placed as fp8 compute's e4m3 weight with per-row scales
// (`options.fp8_compute`, a block linear (IsFp8Linear) the model does not keep in fp32).
bool PlacedAsFp8Linear(const std::string& name_in_block, const CheckpointTensor& tensor,
                       bool in_block, bool fp32, const PlacementOptions& options);

// Which block a checkpoint name belongs to: {index, name within the block}, or {-1, name} for a
// non-block weight; an error for "blocks.<i>..." outside the layout.
absl::StatusOr<std::pair<int, std::string>> BlockOf(const std::string& name,
                                                    const BlockLayout& layout);

// Everything on `device`, loaded once.
class ResidentWeights final : public WeightProvider {
 public:
  static absl::StatusOr<std::unique_ptr<ResidentWeights>> Create(const Checkpoint& checkpoint,
                                                                 const BlockLayout& layout,
                                                                 const PlacementOptions& options);
  int num_blocks() const override { return static_cast<int>(blocks_.size()); }
  absl::StatusOr<const WeightSet*> Acquire(int index) override;
  void Release(int index) override;
  // Bytes held on the device (fp8 counted as stored).
  int64_t resident_bytes() const;
  // How the stored bytes crossed to a GPU (staged_upload.h); zero on the CPU (mapped views).
  const UploadStats& upload() const { return upload_; }

 private:
  struct Block {
    WeightSet ready;                              // compute-dtype tensors
    std::map<std::string, CheckpointTensor> fp8;  // device fp8 / GGUF data, dequantised on use
    WeightSet dequantised;  // ready + fp8 materialised, between Acquire/Release
    bool acquired = false;
  };
  explicit ResidentWeights(PlacementOptions options) : WeightProvider(std::move(options)) {}
  std::vector<Block> blocks_;
  UploadStats upload_;
};

}  // namespace raylight::models
