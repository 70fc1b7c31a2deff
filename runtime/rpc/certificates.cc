#include "runtime/rpc/certificates.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <algorithm>
#include <memory>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace raylight::rpc {
namespace {

namespace fs = std::filesystem;

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;

absl::Status OpenSslError(const std::string& what) {
  char buffer[256] = {};
  ERR_error_string_n(ERR_get_error(), buffer, sizeof(buffer));
  return absl::InternalError(absl::StrCat("certificates: ", what, ": ", buffer));
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("making a P-256 key");
  return key;
}

// Adds an X.509v3 extension by its OpenSSL config text, with `issuer` for the key identifiers.
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (extension == nullptr) return OpenSslError(absl::StrCat("extension ", value));
  const int added = X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  return added == 1 ? absl::OkStatus() : OpenSslError("adding an extension");
}

// A certificate for `key` named `common_name`, valid from now for `days`, not yet signed.
absl::StatusOr<Cert> NewCertificate(EVP_PKEY* key, const std::string& common_name, long days) {
  Cert cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  // A random 128-bit serial: certificates of different clusters never collide.
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return OpenSslError("a random serial");
  serial[0] &= 0x7f;  // positive
  BIGNUM* number = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(number, X509_get_serialNumber(cert.get()));
  BN_free(number);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60 * 60);  // an hour of clock skew
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 24 * 60 * 60);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Raylight"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, size);
}

absl::StatusOr<std::string> CertificatePem(X509* cert) {
  std::unique_ptr<BIO, Free> memory(BIO_new(BIO_s_mem()));
  if (memory == nullptr || PEM_write_bio_X509(memory.get(), cert) != 1) {
    return OpenSslError("encoding a certificate");
  }
  return BioText(memory.get());
}

absl::StatusOr<std::string> KeyPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, Free> memory(BIO_new(BIO_s_mem()));
  if (memory == nullptr ||
      PEM_write_bio_PrivateKey(memory.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("encoding a key");
  }
  return BioText(memory.get());
}

// Creates `path` with `mode` (never wider: O_EXCL, so no existing file is replaced) and writes
// `text`.
absl::Status WriteNew(const fs::path& path, mode_t mode, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("certificates: cannot create ", path.string(), " (does it exist?)"));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  if (done != text.size()) {
    return absl::InternalError(absl::StrCat("certificates: writing ", path.string()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MakeClusterCertificates(const std::string& dir,
                                     const std::vector<std::string>& extra_hosts) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat("certificates: ", dir, ": ", error.message()));
  fs::permissions(dir, fs::perms::owner_all, error);
  for (const char* name : {kCaCertFile, kCaKeyFile, kCertFile, kKeyFile}) {
    if (fs::exists(fs::path(dir) / name)) {
      return absl::AlreadyExistsError(
          absl::StrCat("certificates: ", (fs::path(dir) / name).string(), " exists already"));
    }
  }
  // The authority: self-signed, allowed to sign certificates only, ten years.
  auto ca_key = NewKey();
  if (!ca_key.ok()) return ca_key.status();
  auto ca = NewCertificate(ca_key->get(), "Raylight cluster CA", 3650);
  if (!ca.ok()) return ca.status();
  X509_set_issuer_name(ca->get(), X509_get_subject_name(ca->get()));
  for (const auto& [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                                   std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                                   std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto status = AddExtension(ca->get(), ca->get(), nid, value); !status.ok()) return status;
  }
  if (X509_sign(ca->get(), ca_key->get(), EVP_sha256()) == 0) return OpenSslError("signing the CA");

  // The members' certificate: server and client, the cluster's name plus the given hosts.
  auto key = NewKey();
  if (!key.ok()) return key.status();
  auto cert = NewCertificate(key->get(), "raylight-member", 3650);
  if (!cert.ok()) return cert.status();
  X509_set_issuer_name(cert->get(), X509_get_subject_name(ca->get()));
  std::vector<std::string> names = {absl::StrCat("DNS:", kClusterServerName), "DNS:localhost",
                                    "IP:127.0.0.1"};
  for (const std::string& host : extra_hosts) {
    if (host.empty() || host.find_first_of(",\n") != std::string::npos) continue;
    const std::string name = absl::StrCat(IsIpAddress(host) ? "IP:" : "DNS:", host);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  for (const auto& [nid, value] :
       {std::pair{NID_basic_constraints, std::string("critical,CA:FALSE")},
        std::pair{NID_key_usage, std::string("critical,digitalSignature,keyEncipherment")},
        std::pair{NID_ext_key_usage, std::string("serverAuth,clientAuth")},
        std::pair{NID_subject_alt_name, absl::StrJoin(names, ",")},
        std::pair{NID_authority_key_identifier, std::string("keyid")}}) {
    if (auto status = AddExtension(cert->get(), ca->get(), nid, value); !status.ok()) {
      return status;
    }
  }
  if (X509_sign(cert->get(), ca_key->get(), EVP_sha256()) == 0) {
    return OpenSslError("signing the member certificate");
  }

  auto ca_pem = CertificatePem(ca->get());
  auto ca_key_pem = KeyPem(ca_key->get());
  auto cert_pem = CertificatePem(cert->get());
  auto key_pem = KeyPem(key->get());
  for (const auto* pem : {&ca_pem, &ca_key_pem, &cert_pem, &key_pem}) {
    if (!pem->ok()) return pem->status();
  }
  const fs::path base(dir);
  for (const auto& [name, mode, text] :
       {std::tuple{kCaCertFile, 0644, &*ca_pem}, std::tuple{kCaKeyFile, 0600, &*ca_key_pem},
        std::tuple{kCertFile, 0644, &*cert_pem}, std::tuple{kKeyFile, 0600, &*key_pem}}) {
    if (auto status = WriteNew(base / name, mode, *text); !status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace raylight::rpc
