#include "runtime/rpc/tls.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/rpc/certificates.h"

namespace raylight::rpc {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadPem(const std::string& field, const fs::path& path, bool secret) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(absl::StrCat(field, ": no ", path.string()));
  }
  // A private key others can read is no secret: refused, as ssh refuses one.
  if (secret && (info.st_mode & 0077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s: %s is readable by other users (mode %04o); chmod 600 %s", field,
                        path.string(), info.st_mode & 07777, path.string()));
  }
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", path.string(), " is not PEM"));
  }
  return text.str();
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadMemberTls(const std::string& tls_dir) {
  if (tls_dir.empty()) return TlsMaterial{};
  TlsMaterial tls;
  const fs::path dir(tls_dir);
  for (auto [name, target, secret] :
       {std::tuple{kCaCertFile, &tls.ca_pem, false}, std::tuple{kCertFile, &tls.cert_pem, false},
        std::tuple{kKeyFile, &tls.key_pem, true}}) {
    auto pem = ReadPem("tls_dir", dir / name, secret);
    if (!pem.ok()) return pem.status();
    *target = *std::move(pem);
  }
  return tls;
}

absl::StatusOr<TlsMaterial> LoadClientTls(const std::string& ca_file) {
  if (ca_file.empty()) return TlsMaterial{};
  auto pem = ReadPem("tls_ca", ca_file, false);
  if (!pem.ok()) return pem.status();
  return TlsMaterial{.ca_pem = *std::move(pem)};
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TlsMaterial& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  // Clients come without a certificate; a member's is verified against the cluster CA.
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca_pem;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsMaterial& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca_pem;
  options.pem_private_key = tls.key_pem;
  options.pem_cert_chain = tls.cert_pem;
  return grpc::SslCredentials(options);
}

}  // namespace raylight::rpc
