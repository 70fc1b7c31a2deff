#include "models/core/checkpoint.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "models/core/gguf.h"
#include "models/core/gguf_dequant.h"
#include "models/core/safetensors_tensors.h"
#include "models/core/scaled_fp8_keys.h"

namespace raylight::models {
namespace {

bool IsFp8(at::ScalarType type) { return type == at::kFloat8_e4m3fn || type == at::kFloat8_e5m2; }

// One tensor of a file as read, before its name is normalised.
struct RawTensor {
  std::string name;
  at::Tensor view;
  std::optional<GgufEncoding> gguf;
};

absl::StatusOr<std::vector<RawTensor>> ReadSafetensors(const std::string& path,
                                                       Checkpoint& checkpoint) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  checkpoint.files.push_back(*file);
  for (const auto& [key, value] : (*file)->header().metadata) checkpoint.metadata[key] = value;
  std::vector<RawTensor> tensors;
  for (const StTensorInfo& info : (*file)->header().tensors) {
    auto view = ViewTensor(*file, info);
    if (!view.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path, ": tensor '", info.name,
                                                     "': ", view.status().message()));
    }
    tensors.push_back({info.name, *std::move(view), std::nullopt});
  }
  return tensors;
}

absl::StatusOr<std::vector<RawTensor>> ReadGguf(const std::string& path, Checkpoint& checkpoint) {
  auto file = GgufFile::Open(path);
  if (!file.ok()) return file.status();
  for (const auto& [key, value] : (*file)->header().metadata) checkpoint.metadata[key] = value;
  std::vector<RawTensor> tensors;
  for (const GgufTensorInfo& info : (*file)->header().tensors) {
    const absl::string_view bytes = (*file)->Bytes(info);
    const at::Tensor raw =
        ViewMapped(bytes, *file, {static_cast<int64_t>(bytes.size())}, at::kByte);
    switch (info.type) {
      case GgmlType::kF32:
        tensors.push_back({info.name, raw.view(at::kFloat).view(info.shape)});
        break;
      case GgmlType::kF16:
        tensors.push_back({info.name, raw.view(at::kHalf).view(info.shape)});
        break;
      case GgmlType::kBF16:
        tensors.push_back({info.name, raw.view(at::kBFloat16).view(info.shape)});
        break;
      default:
        tensors.push_back({info.name, raw, GgufEncoding{info.type, info.shape}});
    }
  }
  return tensors;
}

}  // namespace

std::vector<int64_t> CheckpointTensor::value_shape() const {
  return gguf ? gguf->shape : data.sizes().vec();
}

int64_t CheckpointTensor::value_numel() const {
  return gguf ? c10::multiply_integers(gguf->shape) : data.numel();
}

absl::StatusOr<Checkpoint> OpenCheckpoint(const std::vector<std::string>& paths,
                                          const KeyNormalizer& normalize) {
  if (paths.empty()) return absl::InvalidArgumentError("checkpoint: no files given");
  Checkpoint checkpoint;
  struct PendingScale {
    std::string weight;
    float value;
    std::string file;
    std::string raw;
  };
  std::vector<PendingScale> scales;
  for (const std::string& path : paths) {
    auto raw = IsGgufPath(path) ? ReadGguf(path, checkpoint) : ReadSafetensors(path, checkpoint);
    if (!raw.ok()) return raw.status();
    for (RawTensor& info : *raw) {
      const std::string stripped = StripModelPrefix(info.name);
      if (IsDroppedScaleKey(stripped)) continue;
      at::Tensor* view = &info.view;
      if (auto weight = ScaledWeightName(stripped); weight && !info.gguf) {
        if (view->numel() != 1) {
          return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path, ": scale '",
                                                         info.name, "' must hold one value, has ",
                                                         view->numel()));
        }
        scales.push_back({*weight, view->to(at::kFloat).item<float>(), path, info.name});
        continue;
      }
      std::optional<std::string> name = normalize(stripped);
      if (!name) {
        checkpoint.unknown_keys.push_back(info.name);
        continue;
      }
      CheckpointTensor tensor{
          .data = *view, .gguf = std::move(info.gguf), .file = path, .raw_name = info.name};
      auto [it, inserted] = checkpoint.tensors.emplace(*name, std::move(tensor));
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint: '", info.name, "' in ", path, " and '", it->second.raw_name,
                         "' in ", it->second.file, " are the same weight (", *name, ")"));
      }
    }
  }
  for (const PendingScale& scale : scales) {
    std::optional<std::string> name = normalize(scale.weight);
    auto it = name ? checkpoint.tensors.find(*name) : checkpoint.tensors.end();
    if (it == checkpoint.tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint ", scale.file, ": scale '",
                                                     scale.raw, "' has no weight '", scale.weight,
                                                     "'"));
    }
    if (!(scale.value > 0) || !std::isfinite(scale.value)) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint ", scale.file, ": scale '",
                                                     scale.raw, "' is ", scale.value,
                                                     "; it must be finite and positive"));
    }
    it->second.scale = scale.value;
  }
  // An fp8 weight without a scale holds its values as they are (ComfyUI's unscaled fp8 files,
  // flux1-dev-fp8 and wan2.1_*_fp8_e4m3fn: its loader casts them): scale 1, kept fp8 in memory
  // like a scaled one.
  for (auto& [name, tensor] : checkpoint.tensors) {
    if (IsFp8(tensor.data.scalar_type()) && !tensor.scale) tensor.scale = 1.0f;
  }
  return checkpoint;
}

namespace {

// The stored value (fp8 scaled, GGUF blocks or plain) of `data` decoded to `dtype` on its device
// (GGUF: `data` is all of the tensor's blocks).
at::Tensor Decode(const CheckpointTensor& tensor, const at::Tensor& data, at::ScalarType dtype) {
  if (tensor.gguf) {
    // The blocks' size was checked against the shape when the file was opened.
    auto values = DequantizeGguf(data.contiguous(), tensor.gguf->type, tensor.gguf->shape, dtype);
    TORCH_CHECK(values.ok(), "checkpoint ", tensor.file, ": '", tensor.raw_name,
                "': ", std::string(values.status().message()));
    return *std::move(values);
  }
  if (!tensor.scale) return data.to(dtype);
  return (data.to(at::kFloat) * *tensor.scale).to(dtype);
}

// A merged value leaves in the dtype a merge at load would have stored it in (the file's, or
// the requested one for encoded weights), then `dtype`.
at::Tensor Merged(const CheckpointTensor& tensor, const at::Tensor& merged, at::ScalarType dtype) {
  return tensor.encoded() ? merged.to(dtype) : merged.to(tensor.data.scalar_type()).to(dtype);
}

}  // namespace

at::Tensor Materialize(const CheckpointTensor& tensor, at::ScalarType dtype, at::Device device) {
  // The stored bytes cross to the device first (fp8, GGUF blocks or bf16 is what moves), then
  // convert there.
  const at::Tensor on_device = tensor.data.to(device);
  if (tensor.patches.empty()) return Decode(tensor, on_device, dtype);
  // A copy in float32 (never the mapped file itself), merged; the patches' shapes were checked
  // when they were attached (lora.cc).
  at::Tensor values = Decode(tensor, on_device, at::kFloat);
  if (values.data_ptr() == on_device.data_ptr()) values = values.clone();
  for (const WeightPatch& patch : tensor.patches) {
    const absl::Status patched = ApplyWeightPatch(values, patch);
    TORCH_CHECK(patched.ok(), std::string(patched.message()));
  }
  return Merged(tensor, values, dtype);
}

at::Tensor MaterializeRows(const CheckpointTensor& tensor, int64_t begin, int64_t end,
                           at::ScalarType dtype) {
  // GGUF blocks are stored flat: their rows come out of the whole tensor's decode.
  if (tensor.gguf) return Materialize(tensor, dtype, at::kCPU).narrow(0, begin, end - begin);
  const at::Tensor data = tensor.data.narrow(0, begin, end - begin);
  if (tensor.patches.empty()) return Decode(tensor, data, dtype);
  at::Tensor rows = Decode(tensor, data, at::kFloat);
  if (rows.data_ptr() == data.data_ptr()) rows = rows.clone();
  for (const WeightPatch& patch : tensor.patches) {
    auto applied = ApplyWeightPatchToRows(rows, patch, begin, tensor.data.sizes());
    TORCH_CHECK(applied.ok(), std::string(applied.status().message()));
    if (!*applied) {  // a form that needs the whole update: merged in full, then cut
      return Materialize(tensor, dtype, at::kCPU).narrow(0, begin, end - begin);
    }
  }
  return Merged(tensor, rows, dtype);
}

KeyShapes KeyShapesOf(const Checkpoint& checkpoint) {
  KeyShapes shapes;
  for (const auto& [name, tensor] : checkpoint.tensors) shapes.shapes[name] = tensor.value_shape();
  shapes.metadata = checkpoint.metadata;
  shapes.unknown_keys = checkpoint.unknown_keys;
  return shapes;
}

}  // namespace raylight::models
