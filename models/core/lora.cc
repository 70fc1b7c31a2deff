#include "models/core/lora.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "models/core/fp8_requantize.h"
#include "models/core/lora_keys.h"
#include "models/core/model_prefix.h"
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

// A weight (or bias) a LoRA module patches, and which of its rows.
struct Target {
  std::string name;
  PatchRows rows;
};

// Module key -> checkpoint names: ComfyUI's key map over the model's own names, then the
// model's normaliser for other spellings, then the modules the checkpoint arranges otherwise.
class KeyMap {
 public:
  KeyMap(const Checkpoint& checkpoint, const KeyNormalizer& normalize, const LoraRowMap& remapped)
      : checkpoint_(checkpoint), normalize_(normalize), remapped_(remapped) {
    // The model's own names first, then (where they differ) the file's: a LoRA named after the
    // checkpoint it was trained on (Qwen-Image's kohya keys spell diffusers' module names).
    for (bool raw_names : {false, true}) {
      for (const auto& [name, tensor] : checkpoint.tensors) {
        if (absl::EndsWith(name, ".bias")) continue;
        // A weight is named by its module; a parameter of its own (Wan's modulation tables) by
        // its full name, for whole-tensor differences.
        const bool weight = absl::EndsWith(name, ".weight");
        const std::string module = weight ? name.substr(0, name.size() - 7) : name;
        if (!raw_names) {
          Add(module, module);
          continue;
        }
        std::string raw = StripModelPrefix(tensor.raw_name);
        if (weight != absl::EndsWith(raw, ".weight")) continue;
        if (weight) raw.resize(raw.size() - 7);
        if (raw != module) Add(raw, module);
      }
    }
    // Kohya's spelling of a module this checkpoint stores in other rows (a fused projection's
    // part, or the parts' fused whole).
    for (const auto& [module, pieces] : remapped) Add(module, module);
  }

  // `spelled`'s LoRA module keys (kohya's, ComfyUI's, bare) -> `module`; a key already taken
  // keeps its first module.
  void Add(const std::string& spelled, const std::string& module) {
    map_.emplace(absl::StrCat("lora_unet_", absl::StrReplaceAll(spelled, {{".", "_"}})), module);
    map_.emplace(absl::StrCat("diffusion_model.", spelled), module);
    map_.emplace(spelled, module);
  }

  // What `module`'s weight (or bias) update patches: the checkpoint tensor of that name, or the
  // rows of the tensors it is arranged in; empty when nothing here.
  std::vector<Target> Find(std::string module, bool bias) const {
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
      return {};
    }
    if (auto name = TensorOf(base, bias)) return {Target{*name, {}}};
    auto pieces = remapped_.find(base);
    if (pieces == remapped_.end()) return {};
    std::vector<Target> targets;
    for (const LoraRowPiece& piece : pieces->second) {
      auto name = TensorOf(piece.module, bias);
      if (!name) return {};
      targets.push_back(Target{*name, {piece.from, piece.into, piece.count}});
    }
    return targets;
  }

 private:
  // The checkpoint tensor of `base`'s weight (or bias), or `base` itself (a parameter).
  std::optional<std::string> TensorOf(const std::string& base, bool bias) const {
    for (const std::string& name : {base + (bias ? ".bias" : ".weight"), base}) {
      if (checkpoint_.tensors.count(name) && (name != base || !bias)) return name;
    }
    return std::nullopt;
  }

  const Checkpoint& checkpoint_;
  const KeyNormalizer& normalize_;
  const LoraRowMap& remapped_;
  std::map<std::string, std::string> map_;
};

absl::Status Bad(const std::string& source, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("lora ", source, ": ", why));
}

// One LoRA file's tensors, with which of them a patch has used.
class LoraTensors {
 public:
  explicit LoraTensors(std::map<std::string, at::Tensor> tensors) : tensors_(std::move(tensors)) {}
  const std::map<std::string, at::Tensor>& all() const { return tensors_; }
  // The tensor `key`, marked used; undefined when absent.
  at::Tensor Take(const std::string& key) {
    auto it = tensors_.find(key);
    if (it == tensors_.end()) return at::Tensor();
    used_.insert(key);
    return it->second;
  }
  bool Has(const std::string& key) const { return tensors_.count(key) > 0; }
  bool Used(const std::string& key) const { return used_.count(key) > 0; }

 private:
  std::map<std::string, at::Tensor> tensors_;
  std::set<std::string> used_;
};

// A module's alpha over `rank` (1 without alpha, as ComfyUI), marked used.
absl::StatusOr<double> AlphaOver(LoraTensors& tensors, const std::string& module,
                                 std::optional<int64_t> rank, const std::string& path) {
  at::Tensor alpha = tensors.Take(module + ".alpha");
  if (!alpha.defined() || !rank) return 1.0;
  if (alpha.numel() != 1 || *rank < 1) {
    return Bad(path, absl::StrCat("'", module, ".alpha' is not one number over a rank"));
  }
  return alpha.to(at::kDouble).item<double>() / static_cast<double>(*rank);
}

// A LyCORIS LoHa or LoKr update whose first key is `key`, or nullopt when `key` starts none.
absl::StatusOr<std::optional<std::pair<std::string, WeightPatch>>> LycorisPatch(
    const std::string& key, LoraTensors& tensors, const std::string& path) {
  for (const char* first : {".hada_w1_a", ".lokr_w1", ".lokr_w1_a"}) {
    if (!absl::EndsWith(key, first)) continue;
    const std::string module = key.substr(0, key.size() - strlen(first));
    const bool loha = std::string(first) == ".hada_w1_a";
    if (!loha && std::string(first) == ".lokr_w1_a" && tensors.Has(module + ".lokr_w1")) {
      return std::nullopt;  // the module was started by its whole w1
    }
    for (const char* cp : {".hada_t1", ".hada_t2", ".lokr_t2"}) {
      if (tensors.Has(module + cp)) {
        return Bad(path, absl::StrCat("'", module, cp,
                                      "': LyCORIS's CP decomposition (convolutions) is not "
                                      "supported yet"));
      }
    }
    WeightPatch patch;
    patch.source = absl::StrCat(path, ": ", key);
    std::optional<int64_t> rank;
    if (loha) {
      for (const char* part : {".hada_w1_b", ".hada_w2_a", ".hada_w2_b"}) {
        if (!tensors.Has(module + part)) return std::nullopt;
      }
      patch.kind = WeightPatch::Kind::kLoha;
      patch.w1_a = tensors.Take(module + ".hada_w1_a");
      patch.w1_b = tensors.Take(module + ".hada_w1_b");
      patch.w2_a = tensors.Take(module + ".hada_w2_a");
      patch.w2_b = tensors.Take(module + ".hada_w2_b");
      rank = patch.w1_b.dim() >= 1 ? std::optional<int64_t>(patch.w1_b.size(0)) : std::nullopt;
    } else {
      const bool w1 = tensors.Has(module + ".lokr_w1") ||
                      (tensors.Has(module + ".lokr_w1_a") && tensors.Has(module + ".lokr_w1_b"));
      const bool w2 = tensors.Has(module + ".lokr_w2") ||
                      (tensors.Has(module + ".lokr_w2_a") && tensors.Has(module + ".lokr_w2_b"));
      if (!w1 || !w2) return std::nullopt;
      patch.kind = WeightPatch::Kind::kLokr;
      patch.w1 = tensors.Take(module + ".lokr_w1");
      patch.w2 = tensors.Take(module + ".lokr_w2");
      // ComfyUI divides alpha by the rank of the last half given as two factors.
      if (!patch.w1.defined()) {
        patch.w1_a = tensors.Take(module + ".lokr_w1_a");
        patch.w1_b = tensors.Take(module + ".lokr_w1_b");
        if (patch.w1_b.dim() >= 1) rank = patch.w1_b.size(0);
      }
      if (!patch.w2.defined()) {
        patch.w2_a = tensors.Take(module + ".lokr_w2_a");
        patch.w2_b = tensors.Take(module + ".lokr_w2_b");
        if (patch.w2_b.dim() >= 1) rank = patch.w2_b.size(0);
      }
    }
    auto alpha = AlphaOver(tensors, module, rank, path);
    if (!alpha.ok()) return alpha.status();
    patch.alpha = *alpha;
    return std::make_optional(std::make_pair(module, std::move(patch)));
  }
  return std::nullopt;
}

// Reads one LoRA file into patches by checkpoint name (appended to `patches`).
absl::Status CollectPatches(const LoraFile& lora, const KeyMap& keys,
                            std::map<std::string, std::vector<Patch>>& patches,
                            LoraReport& report) {
  if (!std::isfinite(lora.strength)) return Bad(lora.path, "strength is not finite");
  auto read = ReadLoraTensors(lora.path);
  if (!read.ok()) return read.status();
  LoraTensors tensors(*std::move(read));
  int matched = 0;
  // A patch for `module`'s weight, with its DoRA scale when the file has one.
  auto add = [&](const std::string& module, bool bias, Patch patch) -> bool {
    const std::vector<Target> targets = keys.Find(module, bias);
    if (targets.empty()) return false;
    patch.strength = lora.strength;
    if (!bias) patch.dora_scale = tensors.Take(module + ".dora_scale");
    for (const Target& target : targets) {
      patch.rows = target.rows;
      patches[target.name].push_back(patch);
    }
    ++matched;
    return true;
  };
  for (const auto& [key, tensor] : tensors.all()) {
    if (tensors.Used(key)) continue;
    for (const LoraUpDown& suffix : kLoraLowRankSuffixes) {
      if (!absl::EndsWith(key, suffix.up)) continue;
      const std::string module = key.substr(0, key.size() - strlen(suffix.up));
      if (!tensors.Has(module + suffix.down) || keys.Find(module, false).empty()) continue;
      Patch patch{.up = tensors.Take(key),
                  .down = tensors.Take(module + suffix.down),
                  .source = absl::StrCat(lora.path, ": ", key)};
      if (suffix.mid != nullptr) patch.mid = tensors.Take(module + suffix.mid);
      auto alpha = AlphaOver(
          tensors, module,
          patch.down.dim() >= 1 ? std::optional<int64_t>(patch.down.size(0)) : std::nullopt,
          lora.path);
      if (!alpha.ok()) return alpha.status();
      patch.alpha = *alpha;
      add(module, false, std::move(patch));
      break;
    }
    auto lycoris = LycorisPatch(key, tensors, lora.path);
    if (!lycoris.ok()) return lycoris.status();
    if (*lycoris && !add((*lycoris)->first, false, std::move((*lycoris)->second))) {
      // A module of no weight here: its factors are listed as not loaded below.
    }
    for (const auto& [suffix, bias] : kLoraDiffSuffixes) {
      if (!absl::EndsWith(key, suffix)) continue;
      const std::string module = key.substr(0, key.size() - strlen(suffix));
      if (keys.Find(module, bias).empty()) break;
      add(module, bias,
          Patch{.kind = Patch::Kind::kDiff,
                .diff = tensors.Take(key),
                .source = absl::StrCat(lora.path, ": ", key)});
      break;
    }
  }
  for (const auto& [key, tensor] : tensors.all()) {
    if (!tensors.Used(key)) report.unmatched_keys.push_back(absl::StrCat(lora.path, ": ", key));
  }
  if (matched == 0) {
    return Bad(lora.path, absl::StrCat("none of its ", tensors.all().size(),
                                       " keys names a weight of this model (a LoRA for another "
                                       "architecture, or another key spelling)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoraReport> ApplyLoras(Checkpoint& checkpoint, const std::vector<LoraFile>& loras,
                                      const KeyNormalizer& normalize, at::Device device,
                                      bool keep_on_device, bool attach,
                                      const LoraRowMap& remapped) {
  LoraReport report;
  if (loras.empty()) return report;
  const KeyMap keys(checkpoint, normalize, remapped);
  std::map<std::string, std::vector<Patch>> patches;
  for (const LoraFile& lora : loras) {
    if (auto status = CollectPatches(lora, keys, patches, report); !status.ok()) return status;
  }
  for (auto& [name, list] : patches) {
    CheckpointTensor& tensor = checkpoint.tensors.at(name);
    if (tensor.gguf || attach) {
      // Kept quantised, or merged later where the weight is materialised: the patches ride
      // along (checked here on the meta device, where shapes are all there is).
      at::Tensor shape_only =
          at::empty(tensor.value_shape(), at::TensorOptions(at::kMeta).dtype(at::kFloat));
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
    const at::Device home = keep_on_device ? device : at::Device(at::kCPU);
    if (tensor.scale) {
      // A scaled fp8 weight goes back to fp8 over its own scale, as ComfyUI's set_weight puts
      // it back (fp8_requantize.h; ComfyUI's keys are the model's under "diffusion_model.").
      tensor.data = StochasticRoundToFp8(weight / *tensor.scale, tensor.data.scalar_type(),
                                         ComfyKeySeed("diffusion_model." + name))
                        .to(home)
                        .contiguous();
      ++report.patched_tensors;
      continue;
    }
    // Back to the stored dtype, as ComfyUI casts the merge back to the weight's.
    tensor.data = weight.to(home, tensor.data.scalar_type()).contiguous();
    ++report.patched_tensors;
  }
  return report;
}

}  // namespace raylight::models
