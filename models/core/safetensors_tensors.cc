#include "models/core/safetensors_tensors.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace raylight::models {
namespace {

struct TypePair {
  StDtype st;
  at::ScalarType at;
};
constexpr TypePair kTypes[] = {
    {StDtype::kF64, at::kDouble},
    {StDtype::kF32, at::kFloat},
    {StDtype::kF16, at::kHalf},
    {StDtype::kBF16, at::kBFloat16},
    {StDtype::kF8E4M3, at::kFloat8_e4m3fn},
    {StDtype::kF8E5M2, at::kFloat8_e5m2},
    {StDtype::kI64, at::kLong},
    {StDtype::kI32, at::kInt},
    {StDtype::kI16, at::kShort},
    {StDtype::kI8, at::kChar},
    {StDtype::kU8, at::kByte},
    {StDtype::kBool, at::kBool},
};

absl::StatusOr<StTensorInfo> Describe(const std::string& name, const at::Tensor& tensor) {
  auto dtype = FromScalarType(tensor.scalar_type());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ", dtype.status().message()));
  }
  StTensorInfo info;
  info.name = name;
  info.dtype = *dtype;
  info.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
  return info;
}

absl::StatusOr<std::pair<std::string, std::vector<at::Tensor>>> Prepare(
    const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  std::vector<StTensorInfo> infos;
  std::vector<at::Tensor> host;
  for (const auto& [name, tensor] : tensors) {
    auto info = Describe(name, tensor);
    if (!info.ok()) return info.status();
    infos.push_back(*std::move(info));
    host.push_back(tensor.detach().to(at::kCPU).contiguous());
  }
  return std::make_pair(BuildSafetensorsHeader(infos, metadata), std::move(host));
}

}  // namespace

absl::StatusOr<at::ScalarType> ToScalarType(StDtype dtype) {
  for (const auto& pair : kTypes) {
    if (pair.st == dtype) return pair.at;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", StDtypeName(dtype), " has no torch type"));
}

absl::StatusOr<StDtype> FromScalarType(at::ScalarType type) {
  for (const auto& pair : kTypes) {
    if (pair.at == type) return pair.st;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", c10::toString(type), " cannot be stored in safetensors"));
}

absl::StatusOr<at::Tensor> ViewTensor(const std::shared_ptr<SafetensorsFile>& file,
                                      const StTensorInfo& info) {
  auto type = ToScalarType(info.dtype);
  if (!type.ok()) return type.status();
  return ViewMapped(file->Bytes(info), file, info.shape, *type);
}

at::Tensor ViewMapped(absl::string_view bytes, std::shared_ptr<const void> keep,
                      at::IntArrayRef shape, at::ScalarType dtype) {
  // The deleter holds the file: the mapping outlives every view of it.
  return at::from_blob(
      const_cast<char*>(bytes.data()), shape, [keep](void*) mutable { keep.reset(); },
      at::TensorOptions().dtype(dtype).device(at::kCPU));
}

absl::StatusOr<std::map<std::string, at::Tensor>> ParseTensors(absl::string_view bytes,
                                                               absl::string_view source) {
  auto header = ParseSafetensors(bytes, source);
  if (!header.ok()) return header.status();
  std::map<std::string, at::Tensor> out;
  for (const auto& info : header->tensors) {
    auto type = ToScalarType(info.dtype);
    if (!type.ok()) return type.status();
    at::Tensor tensor = at::empty(info.shape, at::TensorOptions().dtype(*type));
    std::memcpy(tensor.data_ptr(), bytes.data() + header->data_offset + info.begin,
                info.end - info.begin);
    out.emplace(info.name, std::move(tensor));
  }
  return out;
}

absl::StatusOr<std::string> SerializeTensors(const NamedTensors& tensors,
                                             const std::map<std::string, std::string>& metadata) {
  auto prepared = Prepare(tensors, metadata);
  if (!prepared.ok()) return prepared.status();
  std::string out = std::move(prepared->first);
  for (const at::Tensor& tensor : prepared->second) {
    out.append(static_cast<const char*>(tensor.data_ptr()), tensor.nbytes());
  }
  return out;
}

absl::Status WriteTensors(const std::string& path, const NamedTensors& tensors,
                          const std::map<std::string, std::string>& metadata) {
  std::vector<StTensorInfo> infos;
  for (const auto& [name, tensor] : tensors) {
    auto info = Describe(name, tensor);
    if (!info.ok()) return info.status();
    infos.push_back(*std::move(info));
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::FailedPreconditionError(absl::StrCat("cannot write ", tmp));
    const std::string header = BuildSafetensorsHeader(infos, metadata);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& [name, tensor] : tensors) {
      at::Tensor host = tensor.detach().to(at::kCPU).contiguous();
      out.write(static_cast<const char*>(host.data_ptr()),
                static_cast<std::streamsize>(host.nbytes()));
    }
    if (!out.flush()) return absl::DataLossError(absl::StrCat("short write to ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace raylight::models
