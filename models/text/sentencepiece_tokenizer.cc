#include "models/text/sentencepiece_tokenizer.h"

#include "absl/strings/str_cat.h"

namespace raylight::models::text {

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromSerialized(
    absl::string_view model_proto, const std::string& source) {
  std::unique_ptr<SentencePieceTokenizer> tokenizer(new SentencePieceTokenizer(source));
  std::string error;
  if (!tokenizer->shim_.LoadSerialized({model_proto.data(), model_proto.size()}, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a SentencePiece model (", error, ")"));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromFile(
    const std::string& path) {
  std::unique_ptr<SentencePieceTokenizer> tokenizer(new SentencePieceTokenizer(path));
  std::string error;
  if (!tokenizer->shim_.LoadFile(path, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a SentencePiece model (", error, ")"));
  }
  return tokenizer;
}

absl::StatusOr<std::vector<int>> SentencePieceTokenizer::Encode(absl::string_view text) const {
  std::vector<int> ids;
  std::string error;
  if (!shim_.Encode({text.data(), text.size()}, &ids, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": cannot tokenize the prompt (", error, ")"));
  }
  return ids;
}

}  // namespace raylight::models::text
