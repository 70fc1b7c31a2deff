// A prompt as ComfyUI's umT5 tokenizer hands it to the encoder (comfy/text_encoders/wan.py
// UMT5XXlTokenizer on sd1_clip.SDTokenizer): the weighted parts tokenized one by one, EOS after
// the last, padded with id 0 up to 512 tokens (longer prompts are kept whole: the encoder and the
// DiT take any length), and the attention mask ComfyUI derives from it (every token up to and
// including the first EOS). Torch-free.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/text/sentencepiece_tokenizer.h"

namespace raylight::models::text {

inline constexpr int kUmt5PadId = 0;
inline constexpr int kUmt5EosId = 1;
inline constexpr int64_t kUmt5MinTokens = 512;

struct Umt5Tokens {
  std::vector<int64_t> ids;     // at least min_length
  std::vector<double> weights;  // one per id (1 for EOS and padding)
  int64_t attended = 0;         // ids[0, attended) are attended to: the text and its EOS
  bool weighted() const;        // any weight other than 1
};

// Refuses a tokenizer whose EOS is not umT5's id 1 (the encoder's mask keys on it). A "embedding:"
// word is tokenized as text (textual-inversion embeddings are not supported), as ComfyUI does
// when it has no embeddings folder.
absl::StatusOr<Umt5Tokens> TokenizeUmt5Prompt(const SentencePieceTokenizer& tokenizer,
                                              absl::string_view prompt,
                                              int64_t min_length = kUmt5MinTokens);

// What ComfyUI encodes beside a weighted prompt to interpolate against: EOS then padding, the
// same length as the prompt's tokens.
Umt5Tokens EmptyUmt5Tokens(int64_t length);

}  // namespace raylight::models::text
