#include "runtime/rpc/grpc_store.h"

#include <grpcpp/grpcpp.h>

#include "raylight/v1/kv_store.grpc.pb.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::rpc {
namespace {

// The server answers a Get at its timeout; the RPC deadline leaves room for the network.
constexpr std::chrono::milliseconds kGetDeadlineSlack = std::chrono::seconds(10);

void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

}  // namespace

class GrpcStore::Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, ClusterToken token)
      : kv(v1::KvStore::NewStub(channel)), token(std::move(token)) {}
  std::unique_ptr<v1::KvStore::Stub> kv;
  ClusterToken token;
};

GrpcStore::GrpcStore(std::shared_ptr<grpc::Channel> channel, ClusterToken token)
    : client_(std::make_unique<Client>(std::move(channel), std::move(token))) {}

GrpcStore::~GrpcStore() = default;

absl::Status GrpcStore::Set(absl::string_view key, absl::string_view value) {
  return SetImpl(*client_, key, value, /*durable=*/false);
}

absl::Status GrpcStore::SetDurable(absl::string_view key, absl::string_view value) {
  return SetImpl(*client_, key, value, /*durable=*/true);
}

absl::Status GrpcStore::SetImpl(Client& client, absl::string_view key, absl::string_view value,
                                bool durable) {
  grpc::ClientContext context;
  SetDeadline(context, kKvCallTimeout);
  client.token.Attach(context);
  v1::KvSetRequest request;
  request.set_key(std::string(key));
  request.set_value(std::string(value));
  request.set_durable(durable);
  v1::KvSetResponse response;
  return FromGrpc(client.kv->Set(&context, request, &response));
}

absl::StatusOr<std::string> GrpcStore::Get(absl::string_view key,
                                           std::chrono::milliseconds timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout + kGetDeadlineSlack);
  client_->token.Attach(context);
  v1::KvGetRequest request;
  request.set_key(std::string(key));
  request.set_timeout_ms(timeout.count());
  v1::KvGetResponse response;
  if (auto status = FromGrpc(client_->kv->Get(&context, request, &response)); !status.ok()) {
    return status;
  }
  return std::move(*response.mutable_value());
}

absl::StatusOr<bool> GrpcStore::Check(absl::string_view key) {
  grpc::ClientContext context;
  SetDeadline(context, kKvCallTimeout);
  client_->token.Attach(context);
  v1::KvKeyRequest request;
  request.set_key(std::string(key));
  v1::KvCheckResponse response;
  if (auto status = FromGrpc(client_->kv->Check(&context, request, &response)); !status.ok()) {
    return status;
  }
  return response.present();
}

absl::StatusOr<int64_t> GrpcStore::Add(absl::string_view key, int64_t delta) {
  grpc::ClientContext context;
  SetDeadline(context, kKvCallTimeout);
  client_->token.Attach(context);
  v1::KvAddRequest request;
  request.set_key(std::string(key));
  request.set_delta(delta);
  v1::KvAddResponse response;
  if (auto status = FromGrpc(client_->kv->Add(&context, request, &response)); !status.ok()) {
    return status;
  }
  return response.value();
}

absl::StatusOr<std::string> GrpcStore::CompareSet(absl::string_view key, absl::string_view expected,
                                                  absl::string_view desired) {
  grpc::ClientContext context;
  SetDeadline(context, kKvCallTimeout);
  client_->token.Attach(context);
  v1::KvCompareSetRequest request;
  request.set_key(std::string(key));
  request.set_expected(std::string(expected));
  request.set_desired(std::string(desired));
  v1::KvValueResponse response;
  if (auto status = FromGrpc(client_->kv->CompareSet(&context, request, &response)); !status.ok()) {
    return status;
  }
  return std::move(*response.mutable_value());
}

absl::StatusOr<bool> GrpcStore::Delete(absl::string_view key) {
  grpc::ClientContext context;
  SetDeadline(context, kKvCallTimeout);
  client_->token.Attach(context);
  v1::KvKeyRequest request;
  request.set_key(std::string(key));
  v1::KvDeleteResponse response;
  if (auto status = FromGrpc(client_->kv->Delete(&context, request, &response)); !status.ok()) {
    return status;
  }
  return response.existed();
}

absl::StatusOr<int64_t> GrpcStore::NumKeys() {
  grpc::ClientContext context;
  SetDeadline(context, kKvCallTimeout);
  client_->token.Attach(context);
  v1::KvNumKeysRequest request;
  v1::KvNumKeysResponse response;
  if (auto status = FromGrpc(client_->kv->NumKeys(&context, request, &response)); !status.ok()) {
    return status;
  }
  return response.count();
}

}  // namespace raylight::rpc
