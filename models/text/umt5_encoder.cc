#include "models/text/umt5_encoder.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/checkpoint.h"
#include "models/core/safetensors.h"
#include "models/text/umt5_keys.h"
#include "models/text/umt5_model.h"

namespace raylight::models::text {
namespace {

// The tokenizer: an explicit spiece.model, else the `spiece_model` tensor of one of the opened
// checkpoint's files (ComfyUI's umT5 files carry it), else a spiece.model beside the first file.
absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FindTokenizer(
    const std::vector<std::string>& paths, const Checkpoint& checkpoint,
    const std::string& explicit_path) {
  if (!explicit_path.empty()) return SentencePieceTokenizer::FromFile(explicit_path);
  for (const std::shared_ptr<SafetensorsFile>& file : checkpoint.files) {
    if (const StTensorInfo* info = file->header().Find("spiece_model")) {
      if (info->dtype != StDtype::kU8 && info->dtype != StDtype::kI8) {
        return absl::InvalidArgumentError(absl::StrCat(file->path(), ": spiece_model is ",
                                                       StDtypeName(info->dtype), ", not bytes"));
      }
      return SentencePieceTokenizer::FromSerialized(file->Bytes(*info),
                                                    absl::StrCat(file->path(), ":spiece_model"));
    }
  }
  const std::filesystem::path beside =
      std::filesystem::path(paths.front()).parent_path() / "spiece.model";
  if (std::filesystem::exists(beside)) return SentencePieceTokenizer::FromFile(beside.string());
  return absl::InvalidArgumentError(
      absl::StrCat(paths.front(), ": no tokenizer (the file has no spiece_model tensor and ",
                   beside.string(), " does not exist)"));
}

// Every weight the detected config needs, with its shape; extras are ignored (a full T5's
// decoder, ComfyUI's markers).
absl::Status CheckWeights(const Checkpoint& checkpoint, const Umt5Config& config) {
  std::vector<std::string> missing;
  for (const auto& [name, shape] : Umt5WeightShapes(config)) {
    auto it = checkpoint.tensors.find(name);
    if (it == checkpoint.tensors.end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.value_shape() != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(it->second.file, ": ", it->second.raw_name, " has shape [",
                       absl::StrJoin(it->second.value_shape(), ", "), "], the encoder needs [",
                       absl::StrJoin(shape, ", "), "]"));
    }
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umT5 checkpoint: missing ", missing.size(), " weights (",
        absl::StrJoin(missing.begin(), missing.begin() + std::min<size_t>(missing.size(), 4), ", "),
        missing.size() > 4 ? ", ..." : "", ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Umt5Encoder>> Umt5Encoder::Load(
    const std::vector<std::string>& paths, const Umt5LoadOptions& options) {
  if (paths.empty()) return absl::InvalidArgumentError("text_encoder: no files");
  if (options.placement.compute_dtype == at::kHalf) {
    return absl::InvalidArgumentError(
        "text_encoder: umT5 cannot compute in fp16 (its activations overflow it); use bf16 or "
        "fp32");
  }
  auto checkpoint = OpenCheckpoint(paths, NormalizeUmt5Key);
  if (!checkpoint.ok()) return checkpoint.status();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, tensor] : checkpoint->tensors) shapes[name] = tensor.value_shape();
  auto config = DetectUmt5Config(shapes);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(paths.front(), ": not a umT5 encoder: ", config.status().message()));
  }
  if (auto checked = CheckWeights(*checkpoint, *config); !checked.ok()) return checked;
  auto tokenizer = FindTokenizer(paths, *checkpoint, options.tokenizer_path);
  if (!tokenizer.ok()) return tokenizer.status();
  if ((*tokenizer)->vocab_size() > config->vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat((*tokenizer)->source(), ": ", (*tokenizer)->vocab_size(),
                     " pieces for an encoder of ", config->vocab, " token embeddings"));
  }
  PlacementOptions placement = options.placement;
  // Norms and bias tables are tiny and used in float32.
  placement.keep_fp32 = [](const std::string& name) {
    return name.ends_with("norm.weight") || name.ends_with("norm1.weight") ||
           name.ends_with("norm2.weight") || name.ends_with("pos_embedding.embedding.weight");
  };
  auto weights = ResidentWeights::Create(
      *checkpoint, BlockLayout::Uniform(static_cast<int>(config->num_layers)), placement);
  if (!weights.ok()) return weights.status();
  std::unique_ptr<Umt5Encoder> encoder(new Umt5Encoder());
  encoder->config_ = *config;
  encoder->tokenizer_ = std::move(*tokenizer);
  encoder->weights_ = std::move(*weights);
  return encoder;
}

absl::StatusOr<at::Tensor> Umt5Encoder::Forward(const at::Tensor& ids, const at::Tensor& mask) {
  return Umt5Forward(*weights_, config_, ids, mask);
}

absl::StatusOr<at::Tensor> Umt5Encoder::EncodePrompt(absl::string_view prompt) {
  auto tokens = TokenizeUmt5Prompt(*tokenizer_, prompt);
  if (!tokens.ok()) return tokens.status();
  const int64_t length = static_cast<int64_t>(tokens->ids.size());
  std::vector<const Umt5Tokens*> rows = {&*tokens};
  // A weighted prompt is interpolated against the empty prompt's encoding, computed in the same
  // batch as ComfyUI's encode_token_weights does.
  const Umt5Tokens empty = EmptyUmt5Tokens(length);
  if (tokens->weighted()) rows.push_back(&empty);
  at::Tensor ids = at::zeros({static_cast<int64_t>(rows.size()), length}, at::kLong);
  at::Tensor mask = at::zeros_like(ids);
  for (size_t r = 0; r < rows.size(); ++r) {
    ids[r].copy_(at::tensor(rows[r]->ids, at::kLong));
    mask[r].narrow(0, 0, rows[r]->attended).fill_(1);
  }
  auto out = Forward(ids, mask);
  if (!out.ok()) return out.status();
  // ComfyUI's zero_out_masked: rows after the EOS carry nothing to the DiT.
  at::Tensor z = (*out * mask.to(out->device()).unsqueeze(-1).to(at::kFloat)).cpu();
  at::Tensor cond = z.narrow(0, 0, 1).clone();
  if (tokens->weighted()) {
    const at::Tensor empty_z = z[1];
    for (int64_t j = 0; j < length; ++j) {
      const double weight = tokens->weights[j];
      if (weight == 1.0) continue;
      cond[0][j] = (cond[0][j] - empty_z[j]) * weight + empty_z[j];
    }
  }
  return cond;
}

}  // namespace raylight::models::text
