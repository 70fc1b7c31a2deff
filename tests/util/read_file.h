// The whole content of a (log or data) file for test assertions and error messages; empty when
// the file cannot be read.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

namespace raylight::testing_util {

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace raylight::testing_util
