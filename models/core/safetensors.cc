#include "models/core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace raylight::models {
namespace {

struct DtypeRow {
  StDtype dtype;
  const char* name;
  int64_t size;
};
constexpr DtypeRow kDtypes[] = {
    {StDtype::kF64, "F64", 8},   {StDtype::kF32, "F32", 4},        {StDtype::kF16, "F16", 2},
    {StDtype::kBF16, "BF16", 2}, {StDtype::kF8E4M3, "F8_E4M3", 1}, {StDtype::kF8E5M2, "F8_E5M2", 1},
    {StDtype::kI64, "I64", 8},   {StDtype::kI32, "I32", 4},        {StDtype::kI16, "I16", 2},
    {StDtype::kI8, "I8", 1},     {StDtype::kU8, "U8", 1},          {StDtype::kBool, "BOOL", 1},
};

// No single dimension or element count is allowed past this: far above any real tensor, far
// below where int64 products could overflow.
constexpr int64_t kMaxElements = int64_t{1} << 48;

absl::Status Invalid(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors ", source, ": ", what));
}

absl::Status InvalidTensor(absl::string_view source, absl::string_view tensor,
                           absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("safetensors ", source, ": tensor '", tensor, "': ", what));
}

// Reads a non-negative integer JSON value (the library stores small ones as signed).
bool AsUint(const nlohmann::json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

absl::StatusOr<StTensorInfo> ParseEntry(absl::string_view source, const std::string& name,
                                        const nlohmann::json& entry) {
  if (!entry.is_object()) return InvalidTensor(source, name, "entry is not an object");
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return InvalidTensor(source, name, "missing string 'dtype'");
  }
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return InvalidTensor(source, name, "missing array 'shape'");
  }
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return InvalidTensor(source, name, "'data_offsets' must be [begin, end]");
  }
  StTensorInfo info;
  info.name = name;
  auto dtype = ParseStDtype(dtype_it->get_ref<const std::string&>());
  if (!dtype.ok()) return InvalidTensor(source, name, dtype.status().message());
  info.dtype = *dtype;
  int64_t numel = 1;
  for (const auto& dim : *shape_it) {
    uint64_t value = 0;
    if (!AsUint(dim, &value) || value > static_cast<uint64_t>(kMaxElements)) {
      return InvalidTensor(source, name, "shape entries must be integers in [0, 2^48]");
    }
    info.shape.push_back(static_cast<int64_t>(value));
    if (value != 0 && numel > kMaxElements / static_cast<int64_t>(value)) {
      return InvalidTensor(source, name, "element count overflows");
    }
    numel *= static_cast<int64_t>(value);
  }
  if (!AsUint((*offsets_it)[0], &info.begin) || !AsUint((*offsets_it)[1], &info.end) ||
      info.begin > info.end) {
    return InvalidTensor(source, name, "data_offsets must be non-negative with begin <= end");
  }
  const uint64_t expected = static_cast<uint64_t>(numel) * StDtypeSize(info.dtype);
  if (info.end - info.begin != expected) {
    return InvalidTensor(
        source, name,
        absl::StrCat("holds ", info.end - info.begin, " bytes but dtype ", StDtypeName(info.dtype),
                     " x ", numel, " elements needs ", expected));
  }
  return info;
}

}  // namespace

absl::string_view StDtypeName(StDtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.name;
  }
  return "?";
}

absl::StatusOr<StDtype> ParseStDtype(absl::string_view name) {
  for (const auto& row : kDtypes) {
    if (name == row.name) return row.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", name, "'"));
}

int64_t StDtypeSize(StDtype dtype) {
  for (const auto& row : kDtypes) {
    if (row.dtype == dtype) return row.size;
  }
  return 0;
}

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const StTensorInfo* StHeader::Find(absl::string_view name) const {
  for (const auto& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

absl::StatusOr<StHeader> ParseSafetensors(absl::string_view buffer, absl::string_view source) {
  if (buffer.size() < 8) {
    return Invalid(source, absl::StrCat("truncated: ", buffer.size(),
                                        " bytes, the header length "
                                        "alone needs 8"));
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) {
    header_bytes = (header_bytes << 8) | static_cast<unsigned char>(buffer[i]);
  }
  // The length itself is not quoted: for a file that is not safetensors it is the file's first
  // eight bytes, which an error must not hand to whoever asked (issue #23: /etc/passwd's
  // "root:x:0" came back as a number).
  if (header_bytes > kMaxHeaderBytes) {
    return Invalid(source, absl::StrCat("the header length exceeds the ", kMaxHeaderBytes,
                                        "-byte limit (not a safetensors file?)"));
  }
  if (header_bytes > buffer.size() - 8) {
    return Invalid(source, absl::StrCat("the header length runs past the end (", buffer.size(),
                                        " bytes in all)"));
  }
  const absl::string_view text = buffer.substr(8, header_bytes);
  nlohmann::json json = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded()) return Invalid(source, "header is not well-formed JSON");
  if (!json.is_object()) return Invalid(source, "header is not a JSON object");

  StHeader header;
  header.data_offset = 8 + header_bytes;
  const uint64_t data_bytes = buffer.size() - header.data_offset;
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) return Invalid(source, "__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          return Invalid(source,
                         absl::StrCat("__metadata__ value '", m.key(), "' is not a string"));
        }
        header.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto entry = ParseEntry(source, it.key(), it.value());
    if (!entry.ok()) return entry.status();
    if (entry->end > data_bytes) {
      return InvalidTensor(source, entry->name,
                           absl::StrCat("data_offsets end ", entry->end,
                                        " lies past the data section (", data_bytes, " bytes)"));
    }
    header.tensors.push_back(*std::move(entry));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const StTensorInfo& a, const StTensorInfo& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  uint64_t covered = 0;
  for (const auto& tensor : header.tensors) {
    if (tensor.begin < covered) {
      return InvalidTensor(
          source, tensor.name,
          absl::StrCat("bytes [", tensor.begin, ", ", tensor.end,
                       ") overlap another tensor's (which ends at ", covered, ")"));
    }
    if (tensor.begin > covered) {
      return InvalidTensor(source, tensor.name,
                           absl::StrCat("leaves a hole in the data section: bytes [", covered, ", ",
                                        tensor.begin, ") belong to no tensor"));
    }
    covered = tensor.end;
  }
  if (covered != data_bytes) {
    return Invalid(source, absl::StrCat("data section has ", data_bytes,
                                        " bytes but tensors cover ", covered));
  }
  return header;
}

absl::StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  auto mapping = MappedFile::Open(path, "safetensors");
  if (!mapping.ok()) return mapping.status();
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile(path, *std::move(mapping)));
  auto header = ParseSafetensors(file->mapping_.bytes(), path);
  if (!header.ok()) return header.status();
  file->header_ = *std::move(header);
  return file;
}

absl::string_view SafetensorsFile::Bytes(const StTensorInfo& tensor) const {
  return mapping_.bytes().substr(header_.data_offset + tensor.begin, tensor.end - tensor.begin);
}

std::string BuildSafetensorsHeader(const std::vector<StTensorInfo>& tensors,
                                   const std::map<std::string, std::string>& metadata) {
  nlohmann::json json = nlohmann::json::object();
  if (!metadata.empty()) json["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& tensor : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * StDtypeSize(tensor.dtype);
    json[tensor.name] = {{"dtype", std::string(StDtypeName(tensor.dtype))},
                         {"shape", tensor.shape},
                         {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = json.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return out + text;
}

}  // namespace raylight::models
