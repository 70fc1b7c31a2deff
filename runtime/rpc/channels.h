// gRPC channel and server settings shared by every Raylight process: message-size bounds and
// keepalives, so that a dead peer is noticed in seconds and no payload meets gRPC's 4 MiB default
// (payloads above kChunkBytes travel as streams of chunks).
#pragma once

#include <memory>
#include <string>

#include "runtime/rpc/tls.h"

namespace grpc {
class Channel;
class ServerBuilder;
}  // namespace grpc

namespace raylight::rpc {

// Largest payload sent in one message; larger ones are split into chunks of this size.
inline constexpr size_t kChunkBytes = 1 << 20;
// Bound on one received message: a chunk plus its header, a control message, or a job's payload
// or result in one message (a Wan 14B 832x480x81 latent is 8.4 MB, 1280x720x81 19 MB; two fp32
// 512-token prompts 16 MB). Worker calls of any size are chunked.
inline constexpr int kMaxMessageBytes = 64 << 20;
// Bound on one message a daemon sends, and one a channel receives: a job's decoded frames come
// back in one GetJobResult response (81 frames of 1280x720 RGB are 224 MB). What a daemon
// receives from a caller stays bounded by kMaxMessageBytes.
inline constexpr int kMaxResultBytes = 1 << 30;

// A channel to `address` ("host:port") with `tls` (plaintext when it is not enabled; with TLS
// the peer must present a certificate of the cluster CA for kClusterServerName). `dedicated`: its
// own TCP connection instead of the process-wide shared one (benchmarks model separate clients
// this way).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const TlsMaterial& tls,
                                           bool dedicated = false);
// The same with the process's default TLS material (SetDefaultTls): a daemon sets its member
// identity once at startup, before it makes a channel, and every channel it makes uses it.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, bool dedicated = false);
void SetDefaultTls(TlsMaterial tls);

// Applies the shared server settings.
void ConfigureServer(grpc::ServerBuilder& builder);

}  // namespace raylight::rpc
