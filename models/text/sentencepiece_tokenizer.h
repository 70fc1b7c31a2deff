// A SentencePiece model (T5's and umT5's tokenizer) through Debian's libsentencepiece: the C++
// library the Python `sentencepiece` package wraps, so ids equal what ComfyUI and transformers
// get from the same model. It is reached through libraylight_sentencepiece.so, loaded on first
// use with its symbols kept to itself (sentencepiece_shim.h says why). Torch-free.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct RaylightSpm;

namespace raylight::models::text {

class SentencePieceTokenizer {
 public:
  // From a serialized ModelProto (ComfyUI stores it in its umT5 files as the `spiece_model`
  // tensor's bytes); `source` names it in errors.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromSerialized(
      absl::string_view model_proto, const std::string& source);
  // From a `spiece.model` file.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromFile(const std::string& path);
  ~SentencePieceTokenizer();

  // The text's pieces as ids, without BOS or EOS (callers add EOS where their model wants it).
  // Not thread-safe (one processor's scratch): callers serialise.
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const;
  int eos_id() const;
  int pad_id() const;
  int vocab_size() const;
  const std::string& source() const { return source_; }

 private:
  SentencePieceTokenizer(RaylightSpm* spm, std::string source)
      : spm_(spm), source_(std::move(source)) {}
  RaylightSpm* spm_;
  std::string source_;
};

}  // namespace raylight::models::text
