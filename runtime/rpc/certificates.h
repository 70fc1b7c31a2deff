// A private certificate authority for one cluster, made by `raylightctl up --tls` (and tests):
// the CA, and one member certificate that head, nodes and workers all present — as server and
// as client (mutual TLS). Clients hold only the CA certificate, to verify the head. Every peer
// verifies the name kClusterServerName rather than a host or IP (the CA is the cluster's own, so
// a certificate it signed is a member wherever it runs), which lets addresses change freely.
//
// OpenSSL's libcrypto makes the keys (EC P-256) and certificates; no gRPC here.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace raylight::rpc {

inline constexpr char kClusterServerName[] = "raylight-cluster";

// The files of a cluster's TLS directory.
inline constexpr char kCaCertFile[] = "ca.pem";
inline constexpr char kCaKeyFile[] = "ca.key";  // needed only to issue certificates
inline constexpr char kCertFile[] = "cert.pem";
inline constexpr char kKeyFile[] = "key.pem";

// Writes a new CA and member certificate into `dir` (created 0700; keys 0600). The member
// certificate names kClusterServerName, localhost and 127.0.0.1, and `extra_hosts` (names or
// IP addresses) for clients that verify a host instead. Refuses to overwrite existing files.
absl::Status MakeClusterCertificates(const std::string& dir,
                                     const std::vector<std::string>& extra_hosts = {});

}  // namespace raylight::rpc
