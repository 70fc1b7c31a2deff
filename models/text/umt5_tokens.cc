#include "models/text/umt5_tokens.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "models/text/prompt_weights.h"

namespace raylight::models::text {
namespace {

// ComfyUI splits a part before each " embedding:" / "\nembedding:" (the separator's space or
// newline is dropped, the identifier kept) and drops empty pieces.
std::vector<std::string> SplitEmbeddingWords(const std::string& text) {
  static constexpr absl::string_view kIdentifier = "embedding:";
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t i = 0; i + 1 + kIdentifier.size() <= text.size(); ++i) {
    if ((text[i] == ' ' || text[i] == '\n') &&
        absl::string_view(text).substr(i + 1, kIdentifier.size()) == kIdentifier) {
      pieces.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  pieces.push_back(text.substr(start));
  std::erase(pieces, std::string());
  return pieces;
}

}  // namespace

bool Umt5Tokens::weighted() const {
  return std::any_of(weights.begin(), weights.end(), [](double w) { return w != 1.0; });
}

absl::StatusOr<Umt5Tokens> TokenizeUmt5Prompt(const SentencePieceTokenizer& tokenizer,
                                              absl::string_view prompt, int64_t min_length) {
  if (tokenizer.eos_id() != kUmt5EosId) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokenizer.source(), ": the tokenizer's EOS id is ", tokenizer.eos_id(),
                     "; umT5 needs ", kUmt5EosId));
  }
  Umt5Tokens tokens;
  for (const WeightedText& part : ParsePromptWeights(prompt)) {
    for (const std::string& word : SplitEmbeddingWords(part.text)) {
      auto ids = tokenizer.Encode(word);
      if (!ids.ok()) return ids.status();
      for (int id : *ids) {
        tokens.ids.push_back(id);
        tokens.weights.push_back(part.weight);
      }
    }
  }
  tokens.ids.push_back(kUmt5EosId);
  tokens.weights.push_back(1.0);
  // The mask runs to the first EOS, as ComfyUI's process_tokens finds it.
  tokens.attended =
      std::find(tokens.ids.begin(), tokens.ids.end(), kUmt5EosId) - tokens.ids.begin() + 1;
  while (static_cast<int64_t>(tokens.ids.size()) < min_length) {
    tokens.ids.push_back(kUmt5PadId);
    tokens.weights.push_back(1.0);
  }
  return tokens;
}

Umt5Tokens EmptyUmt5Tokens(int64_t length) {
  Umt5Tokens tokens;
  tokens.ids.assign(std::max<int64_t>(length, 1), kUmt5PadId);
  tokens.ids[0] = kUmt5EosId;
  tokens.weights.assign(tokens.ids.size(), 1.0);
  tokens.attended = 1;
  return tokens;
}

}  // namespace raylight::models::text
