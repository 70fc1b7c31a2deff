#include "models/text/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "models/text/sentencepiece_shim.h"

namespace raylight::models::text {
namespace {

// The module's entry points, resolved once.
struct SpmLibrary {
  decltype(&raylight_spm_create) create = nullptr;
  decltype(&raylight_spm_destroy) destroy = nullptr;
  decltype(&raylight_spm_load_serialized) load_serialized = nullptr;
  decltype(&raylight_spm_load_file) load_file = nullptr;
  decltype(&raylight_spm_encode) encode = nullptr;
  decltype(&raylight_spm_eos_id) eos_id = nullptr;
  decltype(&raylight_spm_pad_id) pad_id = nullptr;
  decltype(&raylight_spm_piece_count) piece_count = nullptr;
};

// Beside the running executable first (bin/ holds both in a build tree), else where the build
// put it.
std::vector<std::string> ModuleCandidates() {
  std::vector<std::string> candidates;
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) candidates.push_back((exe.parent_path() / "libraylight_sentencepiece.so").string());
  candidates.push_back(RAYLIGHT_SENTENCEPIECE_MODULE);
  return candidates;
}

absl::StatusOr<const SpmLibrary*> Library() {
  static const absl::StatusOr<SpmLibrary> library = []() -> absl::StatusOr<SpmLibrary> {
    void* handle = nullptr;
    std::string errors;
    for (const std::string& path : ModuleCandidates()) {
      handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle != nullptr) break;
      absl::StrAppend(&errors, errors.empty() ? "" : "; ", dlerror());
    }
    if (handle == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("the SentencePiece tokenizer module cannot be loaded: ", errors));
    }
    SpmLibrary lib;
    const auto bind = [&](auto* slot, const char* name) {
      *slot = reinterpret_cast<std::remove_reference_t<decltype(*slot)>>(dlsym(handle, name));
      return *slot != nullptr;
    };
    if (!bind(&lib.create, "raylight_spm_create") || !bind(&lib.destroy, "raylight_spm_destroy") ||
        !bind(&lib.load_serialized, "raylight_spm_load_serialized") ||
        !bind(&lib.load_file, "raylight_spm_load_file") ||
        !bind(&lib.encode, "raylight_spm_encode") || !bind(&lib.eos_id, "raylight_spm_eos_id") ||
        !bind(&lib.pad_id, "raylight_spm_pad_id") ||
        !bind(&lib.piece_count, "raylight_spm_piece_count")) {
      return absl::FailedPreconditionError(
          absl::StrCat("the SentencePiece tokenizer module lacks an entry point: ", dlerror()));
    }
    return lib;  // the module stays loaded for the process's life
  }();
  if (!library.ok()) return library.status();
  return &*library;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromSerialized(
    absl::string_view model_proto, const std::string& source) {
  auto lib = Library();
  if (!lib.ok()) return lib.status();
  std::unique_ptr<SentencePieceTokenizer> tokenizer(
      new SentencePieceTokenizer((*lib)->create(), source));
  char error[512];
  if ((*lib)->load_serialized(tokenizer->spm_, model_proto.data(), model_proto.size(), error,
                              sizeof(error)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a SentencePiece model (", error, ")"));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromFile(
    const std::string& path) {
  auto lib = Library();
  if (!lib.ok()) return lib.status();
  std::unique_ptr<SentencePieceTokenizer> tokenizer(
      new SentencePieceTokenizer((*lib)->create(), path));
  char error[512];
  if ((*lib)->load_file(tokenizer->spm_, path.c_str(), error, sizeof(error)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a SentencePiece model (", error, ")"));
  }
  return tokenizer;
}

// A tokenizer exists only once Library() succeeded: its entry points are there.
SentencePieceTokenizer::~SentencePieceTokenizer() { (*Library())->destroy(spm_); }

absl::StatusOr<std::vector<int>> SentencePieceTokenizer::Encode(absl::string_view text) const {
  const int* ids = nullptr;
  size_t count = 0;
  char error[512];
  if ((*Library())->encode(spm_, text.data(), text.size(), &ids, &count, error, sizeof(error)) !=
      0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": cannot tokenize the prompt (", error, ")"));
  }
  return std::vector<int>(ids, ids + count);
}

int SentencePieceTokenizer::eos_id() const { return (*Library())->eos_id(spm_); }
int SentencePieceTokenizer::pad_id() const { return (*Library())->pad_id(spm_); }
int SentencePieceTokenizer::vocab_size() const { return (*Library())->piece_count(spm_); }

}  // namespace raylight::models::text
