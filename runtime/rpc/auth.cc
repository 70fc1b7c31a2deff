#include "runtime/rpc/auth.h"

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "runtime/common/log.h"

namespace raylight::rpc {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Walks the longer input whatever the contents; a length mismatch is folded into the result.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<ClusterToken> ClusterToken::Load(const std::string& token_file,
                                                const std::string& env_value) {
  if (!token_file.empty()) {
    // A token others can read is no secret: refuse it, as ssh refuses an open private key.
    struct stat info {};
    if (stat(token_file.c_str(), &info) == 0 && (info.st_mode & 0077) != 0) {
      return absl::PermissionDeniedError(
          absl::StrFormat("token_file: %s is readable by other users (mode %04o); chmod 600 %s",
                          token_file, info.st_mode & 07777, token_file));
    }
    std::ifstream in(token_file);
    if (!in) return absl::NotFoundError(absl::StrCat("token_file: cannot read ", token_file));
    std::ostringstream text;
    text << in.rdbuf();
    std::string token(absl::StripAsciiWhitespace(text.str()));
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("token_file: ", token_file, " is empty"));
    }
    return ClusterToken(std::move(token));
  }
  return ClusterToken(std::string(absl::StripAsciiWhitespace(env_value)));
}

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  return parts.size() == 4 && parts[0] == "127";
}

absl::Status CheckExposure(absl::string_view what, absl::string_view host,
                           const ClusterToken& token, bool insecure) {
  if (IsLoopbackHost(host) || token.enabled() || insecure) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what, ": refusing to listen on ", host,
      " without a cluster token: anyone who reaches it could run jobs, call actors and read the "
      "KV store. Give --token-file (or RAYLIGHT_TOKEN), listen on loopback, or pass --insecure "
      "on a network you trust."));
}

grpc::Status ClusterToken::Check(const grpc::ServerContextBase& context, const char* method) const {
  if (!enabled()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthMetadataKey);
  const char* problem = nullptr;
  if (it == metadata.end()) {
    problem = "missing";
  } else {
    std::string presented(it->second.data(), it->second.size());
    constexpr absl::string_view kBearer = "Bearer ";
    if (presented.compare(0, kBearer.size(), kBearer.data(), kBearer.size()) != 0 ||
        !ConstantTimeEquals(presented.substr(kBearer.size()), token_)) {
      problem = "wrong";
    }
  }
  if (problem == nullptr) return grpc::Status::OK;
  RL_LOG(WARNING) << "rejected " << method << " from " << context.peer() << ": " << problem
                  << " cluster token";
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat(problem, " cluster token (metadata '", kAuthMetadataKey,
                                   ": Bearer <token>'; see --token-file / RAYLIGHT_TOKEN)"));
}

void ClusterToken::Attach(grpc::ClientContext& context) const {
  if (enabled()) context.AddMetadata(kAuthMetadataKey, absl::StrCat("Bearer ", token_));
}

}  // namespace raylight::rpc
