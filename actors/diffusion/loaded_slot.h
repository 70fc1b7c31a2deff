// One side model a worker keeps loaded between jobs (the VAE, the CLIP vision tower): reused
// while jobs name the same files and dtype, replaced when they name others, dropped on Evict.
// Not locked: its owner's mutex guards it.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace raylight::actors {

template <typename T>
class LoadedSlot {
 public:
  // The held model when it came from `files` in `dtype`; otherwise the old one is dropped first
  // (its memory is free for the new one) and `load` makes the new one. Load errors are prefixed
  // with `field`, the job field that named the files.
  absl::StatusOr<T*> Get(const std::vector<std::string>& files, at::ScalarType dtype,
                         const std::string& field,
                         absl::FunctionRef<absl::StatusOr<std::unique_ptr<T>>()> load) {
    if (held_ != nullptr && files_ == files && dtype_ == dtype) return held_.get();
    Evict();
    absl::StatusOr<std::unique_ptr<T>> loaded = load();
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat(field, ": ", loaded.status().message()));
    }
    held_ = *std::move(loaded);
    files_ = files;
    dtype_ = dtype;
    return held_.get();
  }

  const T* held() const { return held_.get(); }
  const std::vector<std::string>& files() const { return files_; }
  at::ScalarType dtype() const { return dtype_; }

  // True when a model was held.
  bool Evict() {
    const bool had = held_ != nullptr;
    held_.reset();
    files_.clear();
    return had;
  }

 private:
  std::vector<std::string> files_;
  at::ScalarType dtype_ = at::kFloat;
  std::unique_ptr<T> held_;
};

}  // namespace raylight::actors
