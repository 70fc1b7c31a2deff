// A temporary directory removed (with its contents) when the object goes out of scope.
//
// Removal uses nftw(3), not std::filesystem::remove_all: in processes that load the PyTorch
// wheel's libtorch.so, that symbol resolves to a copy exported by libtorch which crashes when
// called from code built by a newer GCC (seen on the GPU host: g++ 13, torch 2.11).
#pragma once

#include <string>

namespace raylight::testing_util {

class TempDir {
 public:
  // Creates <system temp dir>/<prefix>XXXXXX; aborts when it cannot (a test cannot go on).
  explicit TempDir(const std::string& prefix);
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace raylight::testing_util
