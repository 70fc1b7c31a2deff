#include "runtime/rpc/channels.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/channel_arguments.h>

#include "runtime/rpc/certificates.h"

namespace raylight::rpc {

namespace {

TlsMaterial& DefaultTls() {
  static TlsMaterial* tls = new TlsMaterial();
  return *tls;
}

}  // namespace

void SetDefaultTls(TlsMaterial tls) { DefaultTls() = std::move(tls); }

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, bool dedicated) {
  return MakeChannel(address, DefaultTls(), dedicated);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const TlsMaterial& tls,
                                           bool dedicated) {
  grpc::ChannelArguments args;
  // Every member holds the same certificate, named for the cluster rather than a host.
  if (tls.enabled()) args.SetSslTargetNameOverride(kClusterServerName);
  args.SetMaxReceiveMessageSize(kMaxResultBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Pings keep idle connections to daemons alive and reveal a vanished peer.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect quickly after a peer restarts (the head, a worker).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  if (dedicated) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, ChannelCredentialsFor(tls), args);
}

void ConfigureServer(grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxResultBytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
}

}  // namespace raylight::rpc
