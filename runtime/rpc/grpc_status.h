// Conversions between absl::Status and grpc::Status (same codes, same message, bounded).
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace raylight::rpc {

// The most of a message a status carries: it travels in the trailers, which gRPC caps (16 KiB
// by default); a message past that cap (an echoed 100 KB name, 300k tensor names) reached the
// client as an unrelated RESOURCE_EXHAUSTED instead of the error (issue #23).
inline constexpr size_t kMaxStatusMessageBytes = 4096;

// `message` cut to kMaxStatusMessageBytes at a UTF-8 character boundary, saying how much went.
inline std::string BoundedMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  size_t cut = kMaxStatusMessageBytes - 64;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(message.substr(0, cut), "... (", message.size() - cut, " more bytes)");
}

inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      BoundedMessage(status.message()));
}

inline absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace raylight::rpc
