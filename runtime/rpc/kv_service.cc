#include "runtime/rpc/kv_service.h"

#include "absl/strings/str_cat.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::rpc {
namespace {

grpc::Status CheckKey(const std::string& key) {
  if (key.empty())
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "key: must not be empty");
  return grpc::Status::OK;
}

}  // namespace

grpc::Status KvStoreService::Set(grpc::ServerContext* context, const v1::KvSetRequest* request,
                                 v1::KvSetResponse*) {
  if (auto denied = auth_.Check(*context, "KvStore.Set"); !denied.ok()) return denied;
  if (auto bad = CheckKey(request->key()); !bad.ok()) return bad;
  if (request->durable()) {
    if (durable_ == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "durable: this store keeps no state across restarts");
    }
    if (auto status = durable_->Persist(request->key(), request->value()); !status.ok()) {
      return ToGrpc(status);
    }
  }
  return ToGrpc(store_.Set(request->key(), request->value()));
}

grpc::Status KvStoreService::Get(grpc::ServerContext* context, const v1::KvGetRequest* request,
                                 v1::KvGetResponse* response) {
  if (auto denied = auth_.Check(*context, "KvStore.Get"); !denied.ok()) return denied;
  if (auto bad = CheckKey(request->key()); !bad.ok()) return bad;
  if (request->timeout_ms() < 0 || request->timeout_ms() > kMaxKvWait.count()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("timeout_ms: ", request->timeout_ms(), " is outside [0, ",
                                     kMaxKvWait.count(), "]"));
  }
  // Only a Get that may wait counts against the waiters' bound.
  const bool waits = request->timeout_ms() > 0;
  if (waits && waiters_.fetch_add(1) >= max_waiters_) {
    waiters_.fetch_sub(1);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("KvStore.Get: ", max_waiters_,
                                     " gets are already waiting for their keys; retry later"));
  }
  auto value = store_.Get(request->key(), std::chrono::milliseconds(request->timeout_ms()));
  if (waits) waiters_.fetch_sub(1);
  if (!value.ok()) return ToGrpc(value.status());
  response->set_value(*std::move(value));
  return grpc::Status::OK;
}

grpc::Status KvStoreService::Check(grpc::ServerContext* context, const v1::KvKeyRequest* request,
                                   v1::KvCheckResponse* response) {
  if (auto denied = auth_.Check(*context, "KvStore.Check"); !denied.ok()) return denied;
  auto present = store_.Check(request->key());
  if (!present.ok()) return ToGrpc(present.status());
  response->set_present(*present);
  return grpc::Status::OK;
}

grpc::Status KvStoreService::Add(grpc::ServerContext* context, const v1::KvAddRequest* request,
                                 v1::KvAddResponse* response) {
  if (auto denied = auth_.Check(*context, "KvStore.Add"); !denied.ok()) return denied;
  if (auto bad = CheckKey(request->key()); !bad.ok()) return bad;
  auto value = store_.Add(request->key(), request->delta());
  if (!value.ok()) return ToGrpc(value.status());
  response->set_value(*value);
  return grpc::Status::OK;
}

grpc::Status KvStoreService::CompareSet(grpc::ServerContext* context,
                                        const v1::KvCompareSetRequest* request,
                                        v1::KvValueResponse* response) {
  if (auto denied = auth_.Check(*context, "KvStore.CompareSet"); !denied.ok()) return denied;
  if (auto bad = CheckKey(request->key()); !bad.ok()) return bad;
  auto value = store_.CompareSet(request->key(), request->expected(), request->desired());
  if (!value.ok()) return ToGrpc(value.status());
  response->set_value(*std::move(value));
  return grpc::Status::OK;
}

grpc::Status KvStoreService::Delete(grpc::ServerContext* context, const v1::KvKeyRequest* request,
                                    v1::KvDeleteResponse* response) {
  if (auto denied = auth_.Check(*context, "KvStore.Delete"); !denied.ok()) return denied;
  if (durable_ != nullptr) {
    if (auto status = durable_->Forget(request->key()); !status.ok()) return ToGrpc(status);
  }
  auto existed = store_.Delete(request->key());
  if (!existed.ok()) return ToGrpc(existed.status());
  response->set_existed(*existed);
  return grpc::Status::OK;
}

grpc::Status KvStoreService::NumKeys(grpc::ServerContext* context, const v1::KvNumKeysRequest*,
                                     v1::KvNumKeysResponse* response) {
  if (auto denied = auth_.Check(*context, "KvStore.NumKeys"); !denied.ok()) return denied;
  auto count = store_.NumKeys();
  if (!count.ok()) return ToGrpc(count.status());
  response->set_count(*count);
  return grpc::Status::OK;
}

}  // namespace raylight::rpc
