// gRPC channel and server settings shared by every Raylight process: message-size bounds and
// keepalives, so that a dead peer is noticed in seconds and no payload meets gRPC's 4 MiB default
// (payloads above kChunkBytes travel as streams of chunks).
#pragma once

#include <memory>
#include <string>

namespace grpc {
class Channel;
class ServerBuilder;
}  // namespace grpc

namespace raylight::rpc {

// Largest payload sent in one message; larger ones are split into chunks of this size.
inline constexpr size_t kChunkBytes = 1 << 20;
// Bound on one received message: a chunk plus its header, or a control message.
inline constexpr int kMaxMessageBytes = 8 << 20;

// A channel to `address` ("host:port"). `dedicated`: its own TCP connection instead of the
// process-wide shared one (benchmarks model separate clients this way).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, bool dedicated = false);

// Applies the shared server settings.
void ConfigureServer(grpc::ServerBuilder& builder);

}  // namespace raylight::rpc
