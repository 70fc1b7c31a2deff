// The C interface of libraylight_sentencepiece.so, the one module that links libsentencepiece.
//
// Why a module behind dlopen: Debian's libsentencepiece carries its own protobuf-lite (3.14) and
// exports its symbols. Linked into a process that also holds Debian's libprotobuf (3.21: every
// worker and the head, through gRPC), the two bind to each other's symbols and the process
// aborts at start-up on protobuf's version check (or crashes). Loaded with RTLD_DEEPBIND, the
// module and its libsentencepiece resolve their symbols within themselves first.
// sentencepiece_tokenizer.cc is the only caller. (Its header's own `absl::string_view` collides
// with Debian's Abseil too, another reason it stays in one translation unit.)
#pragma once

#include <cstddef>

extern "C" {

struct RaylightSpm;  // one SentencePieceProcessor

RaylightSpm* raylight_spm_create();
void raylight_spm_destroy(RaylightSpm* spm);
// Each returns 0 on success; else 1 with a message in error[0, error_size).
int raylight_spm_load_serialized(RaylightSpm* spm, const char* data, size_t size, char* error,
                                 size_t error_size);
int raylight_spm_load_file(RaylightSpm* spm, const char* path, char* error, size_t error_size);
// The ids of text[0, size) (no BOS, no EOS) in *ids, *count of them; valid until the next call
// on `spm`.
int raylight_spm_encode(RaylightSpm* spm, const char* text, size_t size, const int** ids,
                        size_t* count, char* error, size_t error_size);
int raylight_spm_eos_id(const RaylightSpm* spm);
int raylight_spm_pad_id(const RaylightSpm* spm);
int raylight_spm_piece_count(const RaylightSpm* spm);

}  // extern "C"
