// The umT5 text encoder as a loaded model: its checkpoint (ComfyUI's umt5_xxl_fp16 /
// fp8_e4m3fn_scaled files, Hugging Face or official Wan names as safetensors), its tokenizer
// (the `spiece_model` bytes ComfyUI stores inside its files, or a `spiece.model` beside the
// weights) and the prompt -> conditioning path ComfyUI runs for Wan.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/core/weights.h"
#include "models/text/sentencepiece_tokenizer.h"
#include "models/text/umt5_config.h"
#include "models/text/umt5_tokens.h"

namespace raylight::models::text {

struct Umt5LoadOptions {
  PlacementOptions placement;  // device, compute dtype (fp16 is refused: T5 overflows it)
  std::string tokenizer_path;  // a spiece.model; empty: the files' own, else one beside them
};

class Umt5Encoder {
 public:
  static absl::StatusOr<std::unique_ptr<Umt5Encoder>> Load(const std::vector<std::string>& paths,
                                                           const Umt5LoadOptions& options);

  // ComfyUI's conditioning for `prompt` (its CLIPTextEncode on a Wan text encoder): the tokens of
  // umt5_tokens.h through the encoder, rows past the EOS zeroed, weighted parts interpolated
  // against the empty prompt's encoding. [1, max(512, tokens), dim], float32, on the CPU.
  absl::StatusOr<at::Tensor> EncodePrompt(absl::string_view prompt);
  // The encoder on token ids and masks (each [B, L]); [B, L, dim] float32 on the device.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& ids, const at::Tensor& mask);

  const Umt5Config& config() const { return config_; }
  const SentencePieceTokenizer& tokenizer() const { return *tokenizer_; }
  WeightProvider& weights() { return *weights_; }

 private:
  Umt5Encoder() = default;
  Umt5Config config_;
  std::unique_ptr<SentencePieceTokenizer> tokenizer_;
  std::unique_ptr<WeightProvider> weights_;
};

}  // namespace raylight::models::text
