#include "models/core/lora.h"

#include <cmath>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "models/core/lora_keys.h"
#include "models/core/safetensors_tensors.h"

namespace raylight::models {
namespace {

// The tensors of a LoRA file as views of its mapping.
absl::StatusOr<std::map<std::string, at::Tensor>> ReadLoraTensors(const std::string& path) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  std::map<std::string, at::Tensor> tensors;
  for (const StTensorInfo& info : (*file)->header().tensors) {
    auto view = ViewTensor(*file, info);
    if (!view.ok()) return view.status();
    tensors[info.name] = *std::move(view);
  }
  return tensors;
}

using Patch = WeightPatch;

// Module key -> checkpoint name: ComfyUI's key map over the model's own names, then the
// model's normaliser for other spellings.
class KeyMap {
 public:
  KeyMap(const Checkpoint& checkpoint, const KeyNormalizer& normalize)
      : checkpoint_(checkpoint), normalize_(normalize) {
    for (const auto& [name, tensor] : checkpoint.tensors) {
      if (absl::EndsWith(name, ".bias")) continue;
      // A weight is named by its module; a parameter of its own (Wan's modulation tables) by
      // its full name, for whole-tensor differences.
      const bool weight = absl::EndsWith(name, ".weight");
      const std::string module = weight ? name.substr(0, name.size() - 7) : name;
      map_[absl::StrCat("lora_unet_", absl::StrReplaceAll(module, {{".", "_"}}))] = module;
      map_[absl::StrCat("diffusion_model.", module)] = module;
      map_[module] = module;
    }
  }

  // The checkpoint name of `module`'s weight (or bias), or nullopt.
  std::optional<std::string> Find(std::string module, bool bias) const {
    // Wan Fun's LoRAs double the underscore after the prefix (comfy/lora_convert.py).
    if (absl::StartsWith(module, "lora_unet__")) module = "lora_unet_" + module.substr(11);
    // diffusers pipelines save a transformer's LoRA under "transformer.", PEFT under
    // "base_model.model.".
    for (absl::string_view prefix : {"transformer.", "base_model.model."}) {
      if (absl::StartsWith(module, prefix)) {
        module = module.substr(prefix.size());
        break;
      }
    }
    std::string base;
    if (auto it = map_.find(module); it != map_.end()) {
      base = it->second;
    } else if (auto normalized = normalize_(module + ".weight"); normalized) {
      base = normalized->substr(0, normalized->size() - 7);
    } else if (auto parameter = normalize_(module); parameter) {
      base = *parameter;  // a parameter of its own (diffusers' scale_shift_table)
    } else {
      return std::nullopt;
    }
    for (const std::string& name : {base + (bias ? ".bias" : ".weight"), base}) {
      if (checkpoint_.tensors.count(name) && (name != base || !bias)) return name;
    }
    return std::nullopt;
  }

 private:
  const Checkpoint& checkpoint_;
  const KeyNormalizer& normalize_;
  std::map<std::string, std::string> map_;
};

absl::Status Bad(const std::string& source, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("lora ", source, ": ", why));
}

// Reads one LoRA file into patches by checkpoint name (appended to `patches`).
absl::Status CollectPatches(const LoraFile& lora, const KeyMap& keys,
                            std::map<std::string, std::vector<Patch>>& patches,
                            LoraReport& report) {
  if (!std::isfinite(lora.strength)) return Bad(lora.path, "strength is not finite");
  auto tensors = ReadLoraTensors(lora.path);
  if (!tensors.ok()) return tensors.status();
  std::map<std::string, bool> used;
  for (const auto& [key, tensor] : *tensors) used[key] = false;
  int matched = 0;
  for (const auto& [key, tensor] : *tensors) {
    if (absl::EndsWith(key, ".dora_scale")) {
      return Bad(lora.path, absl::StrCat("'", key, "': DoRA is not supported yet"));
    }
    for (const LoraUpDown& suffix : kLoraLowRankSuffixes) {
      if (!absl::EndsWith(key, suffix.up)) continue;
      const std::string module = key.substr(0, key.size() - strlen(suffix.up));
      const std::string down_key = module + suffix.down;
      auto down = tensors->find(down_key);
      if (down == tensors->end()) continue;
      auto target = keys.Find(module, false);
      if (!target) break;  // listed below as not loaded
      used[key] = used[down_key] = true;
      Patch patch{.up = tensor,
                  .down = down->second,
                  .scale = lora.strength,
                  .source = absl::StrCat(lora.path, ": ", key)};
      if (suffix.mid != nullptr) {
        if (auto mid = tensors->find(module + suffix.mid); mid != tensors->end()) {
          patch.mid = mid->second;
          used[mid->first] = true;
        }
      }
      if (auto alpha = tensors->find(module + ".alpha"); alpha != tensors->end()) {
        used[alpha->first] = true;
        if (alpha->second.numel() != 1 || patch.down.dim() < 1) {
          return Bad(lora.path, absl::StrCat("'", alpha->first, "' is not one number"));
        }
        patch.scale *=
            alpha->second.to(at::kDouble).item<double>() / static_cast<double>(patch.down.size(0));
      }
      patches[*target].push_back(std::move(patch));
      ++matched;
      break;
    }
    for (const auto& [suffix, bias] : kLoraDiffSuffixes) {
      if (!absl::EndsWith(key, suffix)) continue;
      const std::string module = key.substr(0, key.size() - strlen(suffix));
      used[key] = true;
      auto target = keys.Find(module, bias);
      if (!target) {
        used[key] = false;
        break;
      }
      patches[*target].push_back(Patch{
          .diff = tensor, .scale = lora.strength, .source = absl::StrCat(lora.path, ": ", key)});
      ++matched;
      break;
    }
  }
  for (const auto& [key, was_used] : used) {
    if (!was_used) report.unmatched_keys.push_back(absl::StrCat(lora.path, ": ", key));
  }
  if (matched == 0) {
    return Bad(lora.path, absl::StrCat("none of its ", tensors->size(),
                                       " keys names a weight of this model (a LoRA for another "
                                       "architecture, or another key spelling)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyWeightPatch(at::Tensor& weight, const WeightPatch& patch) {
  const at::Device device = weight.device();
  if (patch.diff.defined()) {
    if (patch.diff.sizes() != weight.sizes()) {
      return Bad(patch.source,
                 absl::StrCat("shape ", c10::str(patch.diff.sizes()), " does not fit the weight's ",
                              c10::str(weight.sizes())));
    }
    weight += patch.diff.to(device, at::kFloat) * patch.scale;
    return absl::OkStatus();
  }
  at::Tensor up = patch.up.to(device, at::kFloat), down = patch.down.to(device, at::kFloat);
  if (patch.mid.defined()) {
    // LoCon: the middle factor folded into down, as ComfyUI folds it.
    at::Tensor mid = patch.mid.to(device, at::kFloat);
    std::vector<int64_t> shape = {down.size(1), down.size(0), mid.size(2), mid.size(3)};
    down = at::mm(down.transpose(0, 1).flatten(1), mid.transpose(0, 1).flatten(1))
               .reshape(shape)
               .transpose(0, 1);
  }
  const int64_t rank = down.size(0);
  if (up.dim() < 2 || up.size(1) != rank || up.size(0) != weight.size(0) ||
      down.flatten(1).size(1) * up.size(0) != weight.numel()) {
    return Bad(patch.source,
               absl::StrCat("up ", c10::str(up.sizes()), " and down ", c10::str(down.sizes()),
                            " do not make the weight's ", c10::str(weight.sizes())));
  }
  weight += at::mm(up.flatten(1), down.flatten(1)).reshape(weight.sizes()) * patch.scale;
  return absl::OkStatus();
}

WeightPatch PatchOn(const WeightPatch& patch, at::Device device) {
  WeightPatch moved = patch;
  for (at::Tensor* tensor : {&moved.up, &moved.down, &moved.mid, &moved.diff}) {
    if (tensor->defined()) *tensor = tensor->to(device);
  }
  return moved;
}

absl::StatusOr<LoraReport> ApplyLoras(Checkpoint& checkpoint, const std::vector<LoraFile>& loras,
                                      const KeyNormalizer& normalize, at::ScalarType fallback_dtype,
                                      at::Device device, bool keep_on_device) {
  LoraReport report;
  if (loras.empty()) return report;
  const KeyMap keys(checkpoint, normalize);
  std::map<std::string, std::vector<Patch>> patches;
  for (const LoraFile& lora : loras) {
    if (auto status = CollectPatches(lora, keys, patches, report); !status.ok()) return status;
  }
  for (auto& [name, list] : patches) {
    CheckpointTensor& tensor = checkpoint.tensors.at(name);
    if (tensor.gguf) {
      // Kept quantised: the patches ride along and apply at each dequantisation (checked here
      // on the meta device, where shapes are all there is).
      at::Tensor shape_only =
          at::empty(tensor.gguf->shape, at::TensorOptions(at::kMeta).dtype(at::kFloat));
      for (Patch& patch : list) {
        if (auto status = ApplyWeightPatch(shape_only, PatchOn(patch, at::kMeta)); !status.ok()) {
          return status;
        }
        tensor.patches.push_back(keep_on_device ? PatchOn(patch, device) : std::move(patch));
      }
      ++report.patched_tensors;
      continue;
    }
    at::Tensor weight = Materialize(tensor, at::kFloat, device).clone();
    for (const Patch& patch : list) {
      if (auto status = ApplyWeightPatch(weight, patch); !status.ok()) return status;
    }
    // Back to the stored dtype (ComfyUI casts the merge back to the weight's); an fp8 scaled
    // weight is kept in `fallback_dtype` instead of being requantised.
    const at::ScalarType stored = tensor.data.scalar_type();
    tensor.data = weight
                      .to(keep_on_device ? device : at::Device(at::kCPU),
                          tensor.encoded() ? fallback_dtype : stored)
                      .contiguous();
    tensor.scale.reset();
    ++report.patched_tensors;
  }
  return report;
}

}  // namespace raylight::models
