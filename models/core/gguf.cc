#include "models/core/gguf.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/mapped_file.h"

namespace raylight::models {
namespace {

constexpr GgmlTypeTraits kTypes[] = {
    {GgmlType::kF32, "F32", 1, 4},       {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kBF16, "BF16", 1, 2},     {GgmlType::kQ4_0, "Q4_0", 32, 18},
    {GgmlType::kQ4_1, "Q4_1", 32, 20},   {GgmlType::kQ5_0, "Q5_0", 32, 22},
    {GgmlType::kQ5_1, "Q5_1", 32, 24},   {GgmlType::kQ8_0, "Q8_0", 32, 34},
    {GgmlType::kQ2_K, "Q2_K", 256, 84},  {GgmlType::kQ3_K, "Q3_K", 256, 110},
    {GgmlType::kQ4_K, "Q4_K", 256, 144}, {GgmlType::kQ5_K, "Q5_K", 256, 176},
    {GgmlType::kQ6_K, "Q6_K", 256, 210},
};

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
// Far above any real model, far below what the arithmetic below could overflow on; checked before
// anything is allocated for a count read from the file.
constexpr uint64_t kMaxTensors = uint64_t{1} << 20;
constexpr uint64_t kMaxMetadata = uint64_t{1} << 20;
constexpr int64_t kMaxElements = int64_t{1} << 48;
constexpr uint32_t kMaxDims = 4;
// city96's converter records reshaped tensors' shapes under this prefix.
constexpr absl::string_view kOrigShapePrefix = "comfy.gguf.orig_shape.";

enum class ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// Reads little-endian values off the buffer; every read checks the bytes are there.
class Reader {
 public:
  Reader(absl::string_view buffer, absl::string_view source) : buffer_(buffer), source_(source) {}
  uint64_t position() const { return position_; }

  absl::Status Fail(absl::string_view field, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("gguf ", source_, ": ", field, ": ", what));
  }

  template <typename T>
  absl::Status Read(absl::string_view field, T* out) {
    if (buffer_.size() - position_ < sizeof(T)) {
      return Fail(field, absl::StrCat("truncated at byte ", position_, " (needs ", sizeof(T),
                                      " bytes, the file has ", buffer_.size(), ")"));
    }
    std::memcpy(out, buffer_.data() + position_, sizeof(T));  // x86 and ARM are little-endian
    position_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status Skip(absl::string_view field, uint64_t bytes) {
    if (buffer_.size() - position_ < bytes) {
      return Fail(field, absl::StrCat("truncated at byte ", position_, " (", bytes,
                                      " bytes declared, ", buffer_.size() - position_, " left)"));
    }
    position_ += bytes;
    return absl::OkStatus();
  }

  absl::Status String(absl::string_view field, std::string* out) {
    uint64_t length = 0;
    if (auto status = Read(field, &length); !status.ok()) return status;
    const uint64_t start = position_;
    if (auto status = Skip(field, length); !status.ok()) return status;
    if (out != nullptr) out->assign(buffer_.data() + start, length);
    return absl::OkStatus();
  }

 private:
  absl::string_view buffer_;
  absl::string_view source_;
  uint64_t position_ = 0;
};

int64_t ScalarBytes(ValueType type) {
  switch (type) {
    case ValueType::kU8:
    case ValueType::kI8:
    case ValueType::kBool:
      return 1;
    case ValueType::kU16:
    case ValueType::kI16:
      return 2;
    case ValueType::kU32:
    case ValueType::kI32:
    case ValueType::kF32:
      return 4;
    case ValueType::kU64:
    case ValueType::kI64:
    case ValueType::kF64:
      return 8;
    default:
      return 0;
  }
}

bool IsInteger(ValueType type) {
  return type != ValueType::kF32 && type != ValueType::kF64 && type != ValueType::kBool &&
         ScalarBytes(type) > 0;
}

// Reads one scalar of `type` as text (and as an integer when it is one).
absl::Status ReadScalar(Reader& reader, ValueType type, const std::string& field, std::string* text,
                        std::optional<int64_t>* integer) {
  auto read = [&](auto value) -> absl::Status {
    if (auto status = reader.Read(field, &value); !status.ok()) return status;
    if constexpr (std::is_floating_point_v<decltype(value)>) {
      if (text != nullptr) *text = absl::StrCat(value);
    } else {
      if (text != nullptr) *text = absl::StrCat(value);
      if (integer != nullptr) {
        // u64 values past int64 are not integers this reader needs; keep them as text only.
        if (!(std::is_same_v<decltype(value), uint64_t> &&
              static_cast<uint64_t>(value) > static_cast<uint64_t>(INT64_MAX))) {
          *integer = static_cast<int64_t>(value);
        }
      }
    }
    return absl::OkStatus();
  };
  switch (type) {
    case ValueType::kU8:
      return read(uint8_t{});
    case ValueType::kI8:
      return read(int8_t{});
    case ValueType::kU16:
      return read(uint16_t{});
    case ValueType::kI16:
      return read(int16_t{});
    case ValueType::kU32:
      return read(uint32_t{});
    case ValueType::kI32:
      return read(int32_t{});
    case ValueType::kU64:
      return read(uint64_t{});
    case ValueType::kI64:
      return read(int64_t{});
    case ValueType::kF32:
      return read(float{});
    case ValueType::kF64:
      return read(double{});
    case ValueType::kBool: {
      uint8_t value = 0;
      if (auto status = reader.Read(field, &value); !status.ok()) return status;
      if (value > 1) return reader.Fail(field, absl::StrCat("bool value ", int{value}));
      if (text != nullptr) *text = value ? "true" : "false";
      return absl::OkStatus();
    }
    case ValueType::kString:
      return reader.String(field, text);
    default:
      return reader.Fail(field, absl::StrCat("unknown value type ", static_cast<uint32_t>(type)));
  }
}

// Reads (or skips) one metadata value; integer arrays of depth 1 are kept.
absl::Status ReadValue(Reader& reader, ValueType type, const std::string& key, int depth,
                       GgufHeader& header) {
  if (type != ValueType::kArray) {
    std::string text;
    std::optional<int64_t> integer;
    if (auto status = ReadScalar(reader, type, key, &text, &integer); !status.ok()) return status;
    if (depth == 0) header.metadata[key] = std::move(text);
    return absl::OkStatus();
  }
  if (depth >= kMaxArrayDepth) {
    return reader.Fail(key, absl::StrCat("arrays nest deeper than ", kMaxArrayDepth));
  }
  uint32_t element_type = 0;
  uint64_t count = 0;
  if (auto status = reader.Read(key, &element_type); !status.ok()) return status;
  if (auto status = reader.Read(key, &count); !status.ok()) return status;
  const auto element = static_cast<ValueType>(element_type);
  if (element_type > static_cast<uint32_t>(ValueType::kF64)) {
    return reader.Fail(key, absl::StrCat("unknown array element type ", element_type));
  }
  // Fixed-size elements are checked against the bytes left before being read one by one, so a
  // huge count fails at once; strings and arrays take at least 8 bytes each.
  const uint64_t least = ScalarBytes(element) > 0 ? ScalarBytes(element) : 8;
  {
    Reader probe = reader;
    if (count > (UINT64_MAX / least) || !probe.Skip(key, count * least).ok()) {
      return reader.Fail(key, absl::StrCat("array of ", count, " elements overruns the file"));
    }
  }
  std::vector<int64_t> integers;
  const bool keep = depth == 0 && IsInteger(element);
  if (keep) integers.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (element == ValueType::kArray) {
      if (auto status = ReadValue(reader, element, key, depth + 1, header); !status.ok()) {
        return status;
      }
      continue;
    }
    std::optional<int64_t> integer;
    if (auto status = ReadScalar(reader, element, key, nullptr, keep ? &integer : nullptr);
        !status.ok()) {
      return status;
    }
    if (keep) {
      if (!integer) return reader.Fail(key, "integer array value past int64");
      integers.push_back(*integer);
    }
  }
  if (keep) header.int_arrays[key] = std::move(integers);
  return absl::OkStatus();
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<GgmlTypeTraits> TraitsOf(uint32_t type_id) {
  for (const GgmlTypeTraits& traits : kTypes) {
    if (static_cast<uint32_t>(traits.type) == type_id) return traits;
  }
  std::vector<std::string> known;
  for (const GgmlTypeTraits& traits : kTypes) known.push_back(traits.name);
  return absl::InvalidArgumentError(absl::StrCat("ggml type ", type_id,
                                                 " is not one this reader dequantises (",
                                                 absl::StrJoin(known, ", "), ")"));
}

const GgmlTypeTraits& TraitsOf(GgmlType type) {
  for (const GgmlTypeTraits& traits : kTypes) {
    if (traits.type == type) return traits;
  }
  return kTypes[0];  // unreachable: GgmlType holds only the table's types
}

absl::StatusOr<GgmlType> ParseGgmlType(absl::string_view name) {
  for (const GgmlTypeTraits& traits : kTypes) {
    if (absl::EqualsIgnoreCase(traits.name, name)) return traits.type;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a GGUF type"));
}

int64_t GgmlBytes(GgmlType type, int64_t elements) {
  const GgmlTypeTraits& traits = TraitsOf(type);
  return elements / traits.block_elements * traits.block_bytes;
}

int64_t GgufTensorInfo::numel() const {
  int64_t total = 1;
  for (int64_t dim : shape) total *= dim;
  return total;
}

const GgufTensorInfo* GgufHeader::Find(absl::string_view name) const {
  for (const GgufTensorInfo& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

bool LooksLikeGguf(absl::string_view buffer) {
  return buffer.size() >= 4 && std::memcmp(buffer.data(), kMagic, 4) == 0;
}

bool IsGgufPath(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && LooksLikeGguf(absl::string_view(magic, 4));
}

absl::StatusOr<GgufHeader> ParseGguf(absl::string_view buffer, absl::string_view source) {
  Reader reader(buffer, source);
  GgufHeader header;
  char magic[4] = {};
  for (char& c : magic) {
    if (auto status = reader.Read("magic", &c); !status.ok()) return status;
  }
  if (std::memcmp(magic, kMagic, 4) != 0) return reader.Fail("magic", "not a GGUF file");
  if (auto status = reader.Read("version", &header.version); !status.ok()) return status;
  if (header.version != 2 && header.version != 3) {
    return reader.Fail("version", absl::StrCat(header.version, " (this reader reads 2 and 3)"));
  }
  uint64_t tensor_count = 0;
  uint64_t metadata_count = 0;
  if (auto status = reader.Read("tensor_count", &tensor_count); !status.ok()) return status;
  if (auto status = reader.Read("metadata_kv_count", &metadata_count); !status.ok()) return status;
  if (tensor_count > kMaxTensors) {
    return reader.Fail("tensor_count", absl::StrCat(tensor_count, " is over ", kMaxTensors));
  }
  if (metadata_count > kMaxMetadata) {
    return reader.Fail("metadata_kv_count",
                       absl::StrCat(metadata_count, " is over ", kMaxMetadata));
  }

  for (uint64_t i = 0; i < metadata_count; ++i) {
    std::string key;
    if (auto status = reader.String(absl::StrCat("metadata key ", i), &key); !status.ok()) {
      return status;
    }
    uint32_t type = 0;
    if (auto status = reader.Read(key, &type); !status.ok()) return status;
    if (type > static_cast<uint32_t>(ValueType::kF64)) {
      return reader.Fail(key, absl::StrCat("unknown value type ", type));
    }
    if (key == "general.alignment") {
      if (type != static_cast<uint32_t>(ValueType::kU32)) {
        return reader.Fail(key, "must be a u32");
      }
      uint32_t alignment = 0;
      if (auto status = reader.Read(key, &alignment); !status.ok()) return status;
      if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        return reader.Fail(key, absl::StrCat(alignment, " is not a power of two"));
      }
      header.alignment = alignment;
      header.metadata[key] = absl::StrCat(alignment);
      continue;
    }
    if (auto status = ReadValue(reader, static_cast<ValueType>(type), key, 0, header);
        !status.ok()) {
      return status;
    }
  }

  header.tensors.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo tensor;
    if (auto status = reader.String(absl::StrCat("tensor ", i, " name"), &tensor.name);
        !status.ok()) {
      return status;
    }
    const std::string field = absl::StrCat("tensor '", tensor.name, "'");
    uint32_t dims = 0;
    if (auto status = reader.Read(field, &dims); !status.ok()) return status;
    if (dims < 1 || dims > kMaxDims) {
      return reader.Fail(field, absl::StrCat(dims, " dimensions (1 to ", kMaxDims, ")"));
    }
    std::vector<int64_t> ne(dims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      uint64_t size = 0;
      if (auto status = reader.Read(field, &size); !status.ok()) return status;
      if (size < 1 || size > static_cast<uint64_t>(kMaxElements) ||
          numel > kMaxElements / static_cast<int64_t>(size)) {
        return reader.Fail(field, absl::StrCat("dimension ", d, " is ", size,
                                               " (at least 1, product at most 2^48)"));
      }
      ne[d] = static_cast<int64_t>(size);
      numel *= ne[d];
    }
    uint32_t type_id = 0;
    if (auto status = reader.Read(field, &type_id); !status.ok()) return status;
    auto traits = TraitsOf(type_id);
    if (!traits.ok()) return reader.Fail(field, traits.status().message());
    tensor.type = traits->type;
    if (ne[0] % traits->block_elements != 0) {
      return reader.Fail(field, absl::StrCat("first dimension ", ne[0], " is not a multiple of ",
                                             traits->name, "'s block of ", traits->block_elements));
    }
    if (auto status = reader.Read(field, &tensor.offset); !status.ok()) return status;
    tensor.bytes = static_cast<uint64_t>(numel / traits->block_elements * traits->block_bytes);
    tensor.shape.assign(ne.rbegin(), ne.rend());
    if (header.Find(tensor.name) != nullptr) return reader.Fail(field, "appears twice");
    header.tensors.push_back(std::move(tensor));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t end = reader.position();
  header.data_offset = (end + header.alignment - 1) / header.alignment * header.alignment;
  if (header.data_offset > buffer.size()) {
    if (header.tensors.empty() && end == buffer.size()) {
      header.data_offset = buffer.size();
    } else {
      return reader.Fail("data section",
                         absl::StrCat("starts at ", header.data_offset, ", past the file's end (",
                                      buffer.size(), " bytes)"));
    }
  }
  const uint64_t data_bytes = buffer.size() - header.data_offset;
  std::vector<const GgufTensorInfo*> by_offset;
  for (GgufTensorInfo& tensor : header.tensors) {
    const std::string field = absl::StrCat("tensor '", tensor.name, "'");
    if (tensor.offset % header.alignment != 0) {
      return reader.Fail(field, absl::StrCat("offset ", tensor.offset, " is not a multiple of the ",
                                             header.alignment, "-byte alignment"));
    }
    if (tensor.offset > data_bytes || tensor.bytes > data_bytes - tensor.offset) {
      return reader.Fail(field,
                         absl::StrCat("bytes [", tensor.offset, ", ", tensor.offset + tensor.bytes,
                                      ") run past the data section's ", data_bytes));
    }
    // city96: the shape before the converter flattened it (GGUF holds at most 4 dimensions).
    auto orig = header.int_arrays.find(absl::StrCat(kOrigShapePrefix, tensor.name));
    if (orig != header.int_arrays.end()) {
      int64_t product = 1;
      bool valid = !orig->second.empty() && orig->second.size() <= 8;
      for (int64_t dim : orig->second) {
        valid = valid && dim >= 1 && dim <= kMaxElements && product <= kMaxElements / dim;
        if (valid) product *= dim;
      }
      if (!valid || product != tensor.numel()) {
        return reader.Fail(orig->first,
                           absl::StrCat(ShapeText(orig->second), " does not hold the ",
                                        tensor.numel(), " elements of ", ShapeText(tensor.shape)));
      }
      tensor.shape = orig->second;
    }
    by_offset.push_back(&tensor);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& before = *by_offset[i - 1];
    if (by_offset[i]->offset < before.offset + before.bytes) {
      return reader.Fail(
          absl::StrCat("tensor '", by_offset[i]->name, "'"),
          absl::StrCat("bytes from ", by_offset[i]->offset, " overlap '", before.name,
                       "' (which ends at ", before.offset + before.bytes, ")"));
    }
  }
  return header;
}

absl::StatusOr<std::shared_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  auto mapping = MappedFile::Open(path, "gguf");
  if (!mapping.ok()) return mapping.status();
  auto header = ParseGguf(mapping->bytes(), path);
  if (!header.ok()) return header.status();
  std::shared_ptr<GgufFile> file(new GgufFile(path, *std::move(mapping)));
  file->header_ = *std::move(header);
  return file;
}

absl::string_view GgufFile::Bytes(const GgufTensorInfo& tensor) const {
  return mapping_.bytes().substr(header_.data_offset + tensor.offset, tensor.bytes);
}

}  // namespace raylight::models
