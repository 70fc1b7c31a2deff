#include "models/text/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

struct RaylightSpm {
  sentencepiece::SentencePieceProcessor processor;
  std::vector<int> ids;
};

namespace {

int Report(const sentencepiece::util::Status& status, char* error, size_t error_size) {
  if (status.ok()) return 0;
  if (error_size > 0) {
    const std::string message = status.ToString();
    const size_t n = std::min(message.size(), error_size - 1);
    std::memcpy(error, message.data(), n);
    error[n] = '\0';
  }
  return 1;
}

}  // namespace

extern "C" {

RaylightSpm* raylight_spm_create() { return new RaylightSpm(); }
void raylight_spm_destroy(RaylightSpm* spm) { delete spm; }

int raylight_spm_load_serialized(RaylightSpm* spm, const char* data, size_t size, char* error,
                                 size_t error_size) {
  return Report(spm->processor.LoadFromSerializedProto(std::string_view(data, size)), error,
                error_size);
}

int raylight_spm_load_file(RaylightSpm* spm, const char* path, char* error, size_t error_size) {
  return Report(spm->processor.Load(path), error, error_size);
}

int raylight_spm_encode(RaylightSpm* spm, const char* text, size_t size, const int** ids,
                        size_t* count, char* error, size_t error_size) {
  spm->ids.clear();
  const int failed =
      Report(spm->processor.Encode(std::string_view(text, size), &spm->ids), error, error_size);
  *ids = spm->ids.data();
  *count = spm->ids.size();
  return failed;
}

int raylight_spm_eos_id(const RaylightSpm* spm) { return spm->processor.eos_id(); }
int raylight_spm_pad_id(const RaylightSpm* spm) { return spm->processor.pad_id(); }
int raylight_spm_piece_count(const RaylightSpm* spm) { return spm->processor.GetPieceSize(); }

}  // extern "C"
