#include "models/text/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

namespace raylight::models::text {
namespace {

bool Check(const sentencepiece::util::Status& status, std::string* error) {
  if (status.ok()) return true;
  *error = status.ToString();
  return false;
}

}  // namespace

SentencePieceShim::SentencePieceShim()
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SentencePieceShim::~SentencePieceShim() = default;

bool SentencePieceShim::LoadSerialized(std::string_view model_proto, std::string* error) {
  return Check(processor_->LoadFromSerializedProto(model_proto), error);
}

bool SentencePieceShim::LoadFile(const std::string& path, std::string* error) {
  return Check(processor_->Load(path), error);
}

bool SentencePieceShim::Encode(std::string_view text, std::vector<int>* ids,
                               std::string* error) const {
  return Check(processor_->Encode(text, ids), error);
}

int SentencePieceShim::eos_id() const { return processor_->eos_id(); }
int SentencePieceShim::pad_id() const { return processor_->pad_id(); }
int SentencePieceShim::piece_count() const { return processor_->GetPieceSize(); }

}  // namespace raylight::models::text
