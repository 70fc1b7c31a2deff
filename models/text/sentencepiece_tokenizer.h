// A SentencePiece model (T5's and umT5's tokenizer) through Debian's libsentencepiece: the C++
// library the Python `sentencepiece` package wraps, so ids equal what ComfyUI and transformers
// get from the same model. Torch-free.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/text/sentencepiece_shim.h"

namespace raylight::models::text {

class SentencePieceTokenizer {
 public:
  // From a serialized ModelProto (ComfyUI stores it in its umT5 files as the `spiece_model`
  // tensor's bytes); `source` names it in errors.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromSerialized(
      absl::string_view model_proto, const std::string& source);
  // From a `spiece.model` file.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromFile(const std::string& path);

  // The text's pieces as ids, without BOS or EOS (callers add EOS where their model wants it).
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const;
  int eos_id() const { return shim_.eos_id(); }
  int pad_id() const { return shim_.pad_id(); }
  int vocab_size() const { return shim_.piece_count(); }
  const std::string& source() const { return source_; }

 private:
  explicit SentencePieceTokenizer(std::string source) : source_(std::move(source)) {}
  SentencePieceShim shim_;
  std::string source_;
};

}  // namespace raylight::models::text
