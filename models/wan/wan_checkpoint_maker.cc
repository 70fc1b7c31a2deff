#include "models/wan/wan_checkpoint_maker.h"

#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "models/core/gguf.h"
#include "models/core/gguf_random.h"
#include "models/core/gguf_writer.h"
#include "models/core/safetensors_tensors.h"
#include "models/wan/wan_keys.h"

namespace raylight::models::wan {
namespace {

std::string Spell(const std::string& internal, KeySpelling spelling) {
  switch (spelling) {
    case KeySpelling::kOfficial:
      return internal;
    case KeySpelling::kComfyUi:
      return "model.diffusion_model." + internal;
    case KeySpelling::kDiffusers:
      return ToDiffusersKey(internal);
  }
  return internal;
}

bool IsMatrix(const std::string& name, const std::vector<int64_t>& shape) {
  return shape.size() >= 2 && name.ends_with(".weight");
}

// Values for one weight, fp32.
at::Tensor RandomValues(const std::string& name, const std::vector<int64_t>& shape,
                        at::Generator& generator, at::Device device) {
  auto options = at::TensorOptions().dtype(at::kFloat).device(device);
  if (name.ends_with("modulation")) {
    return at::randn(shape, generator, options) / std::sqrt(static_cast<double>(shape.back()));
  }
  if (IsMatrix(name, shape)) {
    int64_t fan_in = 1;
    for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
    return at::randn(shape, generator, options) / std::sqrt(static_cast<double>(fan_in));
  }
  if (name.ends_with(".bias")) return at::randn(shape, generator, options) * 0.02;
  return 1.0 + 0.1 * at::randn(shape, generator, options);  // norm weights
}

absl::Status WriteGgufCheckpoint(const WanConfig& config, const std::string& path,
                                 const MakeCheckpointOptions& options, at::Generator& generator) {
  const GgmlTypeTraits& traits = TraitsOf(*options.gguf);
  std::vector<at::Tensor> keep;  // the bytes the writer's views point into
  std::vector<GgufWriteTensor> tensors;
  for (const auto& [name, shape] : WanWeightShapes(config)) {
    GgufWriteTensor tensor{Spell(name, options.spelling), GgmlType::kF32, shape, {}};
    at::Tensor bytes;
    if (IsMatrix(name, shape) && name.starts_with("blocks.") &&
        shape.back() % traits.block_elements == 0) {
      int64_t numel = 1;
      for (int64_t dim : shape) numel *= dim;
      tensor.type = *options.gguf;
      bytes = RandomGgufBlocks(tensor.type, numel, generator, options.device);
    } else {
      at::Tensor values = RandomValues(name, shape, generator, options.device);
      const bool f16 = IsMatrix(name, shape) && !name.ends_with("modulation");
      tensor.type = f16 ? GgmlType::kF16 : GgmlType::kF32;
      bytes = values.to(f16 ? at::kHalf : at::kFloat).cpu().contiguous().flatten().view(at::kByte);
    }
    tensor.bytes = absl::string_view(static_cast<const char*>(bytes.const_data_ptr()),
                                     static_cast<size_t>(bytes.numel()));
    keep.push_back(std::move(bytes));
    tensors.push_back(std::move(tensor));
  }
  return WriteGguf(path, tensors,
                   {{"general.architecture", "wan"},
                    {"num_heads", absl::StrCat(config.num_heads)},
                    {"raylight.preset", config.name}});
}

}  // namespace

absl::Status MakeWanCheckpoint(const WanConfig& config, const std::string& path,
                               const MakeCheckpointOptions& options) {
  if (auto status = config.Validate(); !status.ok()) return status;
  const bool fp8 = options.dtype == at::kFloat8_e4m3fn;
  if (!fp8 && options.dtype != at::kFloat && options.dtype != at::kHalf &&
      options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype: ", c10::toString(options.dtype),
                     " is not a checkpoint dtype (f32, f16, bf16, fp8)"));
  }
  try {
    at::Generator generator = options.device.is_cuda()
                                  ? at::globalContext().defaultGenerator(options.device)
                                  : at::make_generator<at::CPUGeneratorImpl>(options.seed);
    if (options.device.is_cuda()) generator.set_current_seed(options.seed);
    if (options.gguf) return WriteGgufCheckpoint(config, path, options, generator);
    models::NamedTensors tensors;
    for (const auto& [name, shape] : WanWeightShapes(config)) {
      at::Tensor values = RandomValues(name, shape, generator, options.device);
      // fp8 "scaled": the block matrices only, as real scaled-fp8 files do; the rest in bf16.
      if (fp8 && IsMatrix(name, shape) && name.starts_with("blocks.")) {
        const float scale = std::max(values.abs().max().item<float>(), 1e-12f) / 448.0f;
        tensors.emplace_back(Spell(name, options.spelling),
                             (values / scale).to(at::kFloat8_e4m3fn).cpu());
        const std::string module = Spell(name.substr(0, name.size() - 7), options.spelling);
        tensors.emplace_back(module + ".scale_weight", at::full({}, scale, at::kFloat));
        continue;
      }
      const at::ScalarType stored = fp8 ? at::kBFloat16 : options.dtype;
      tensors.emplace_back(Spell(name, options.spelling), values.to(stored).cpu());
    }
    if (fp8)
      tensors.emplace_back(Spell("scaled_fp8", options.spelling),
                           at::zeros({2}, at::kFloat8_e4m3fn));
    std::map<std::string, std::string> metadata = {{"num_heads", absl::StrCat(config.num_heads)},
                                                   {"raylight.preset", config.name}};
    return WriteTensors(path, tensors, metadata);
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("make checkpoint: ", error.what_without_backtrace()));
  }
}

}  // namespace raylight::models::wan
