// The one translation unit that sees libsentencepiece's header: it declares its own
// `absl::string_view` (std::string_view), which collides with Debian's Abseil, whose
// absl::string_view is a class of its own. So this interface is plain C++ (no Abseil), and
// sentencepiece_tokenizer.cc wraps it in Status.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace raylight::models::text {

class SentencePieceShim {
 public:
  SentencePieceShim();
  ~SentencePieceShim();
  // Each returns false with `error` set when the library refuses.
  bool LoadSerialized(std::string_view model_proto, std::string* error);
  bool LoadFile(const std::string& path, std::string* error);
  bool Encode(std::string_view text, std::vector<int>* ids, std::string* error) const;
  int eos_id() const;
  int pad_id() const;
  int piece_count() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace raylight::models::text
