#include "models/core/gguf_writer.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "models/core/gguf.h"

namespace raylight::models {
namespace {

constexpr uint64_t kAlignment = 32;
constexpr uint32_t kString = 8, kArray = 9, kInt64 = 11;

class Out {
 public:
  template <typename T>
  void Put(T value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  void String(absl::string_view text) {
    Put<uint64_t>(text.size());
    bytes_.append(text.data(), text.size());
  }
  void Pad() { bytes_.append((kAlignment - bytes_.size() % kAlignment) % kAlignment, '\0'); }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

uint64_t Padded(uint64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

absl::Status WriteGguf(const std::string& path, const std::vector<GgufWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<std::vector<int64_t>> stored_shapes;
  std::vector<const GgufWriteTensor*> reshaped;
  for (const GgufWriteTensor& tensor : tensors) {
    int64_t numel = 1;
    for (int64_t dim : tensor.shape) numel *= dim;
    std::vector<int64_t> shape = tensor.shape;
    if (shape.size() > 4) {
      shape = {shape.front(), numel / shape.front()};
      reshaped.push_back(&tensor);
    }
    const GgmlTypeTraits& traits = TraitsOf(tensor.type);
    if (shape.empty() || shape.back() % traits.block_elements != 0 ||
        static_cast<int64_t>(tensor.bytes.size()) != GgmlBytes(tensor.type, numel)) {
      return absl::InvalidArgumentError(absl::StrCat("gguf writer: '", tensor.name,
                                                     "': ", tensor.bytes.size(), " bytes are not ",
                                                     traits.name, " values of that shape"));
    }
    stored_shapes.push_back(std::move(shape));
  }
  Out out;
  out.Put<uint32_t>(0x46554747);  // "GGUF"
  out.Put<uint32_t>(3);
  out.Put<uint64_t>(tensors.size());
  out.Put<uint64_t>(metadata.size() + reshaped.size());
  for (const auto& [key, value] : metadata) {
    out.String(key);
    out.Put<uint32_t>(kString);
    out.String(value);
  }
  for (const GgufWriteTensor* tensor : reshaped) {
    out.String(absl::StrCat("comfy.gguf.orig_shape.", tensor->name));
    out.Put<uint32_t>(kArray);
    out.Put<uint32_t>(kInt64);
    out.Put<uint64_t>(tensor->shape.size());
    for (int64_t dim : tensor->shape) out.Put<int64_t>(dim);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.String(tensors[i].name);
    out.Put<uint32_t>(stored_shapes[i].size());
    for (auto it = stored_shapes[i].rbegin(); it != stored_shapes[i].rend(); ++it) {
      out.Put<uint64_t>(static_cast<uint64_t>(*it));  // GGUF lists the innermost first
    }
    out.Put<uint32_t>(static_cast<uint32_t>(tensors[i].type));
    out.Put<uint64_t>(offset);
    offset += Padded(tensors[i].bytes.size());
  }
  out.Pad();
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(out.bytes().data(), static_cast<std::streamsize>(out.bytes().size()));
  const std::string zeros(kAlignment, '\0');
  for (const GgufWriteTensor& tensor : tensors) {
    file.write(tensor.bytes.data(), static_cast<std::streamsize>(tensor.bytes.size()));
    file.write(zeros.data(),
               static_cast<std::streamsize>(Padded(tensor.bytes.size()) - tensor.bytes.size()));
  }
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("gguf writer: writing ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace raylight::models
