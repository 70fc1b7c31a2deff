// KvStoreService: serves a Store over gRPC (raylight.v1.KvStore). The head mounts it over its
// own store; tests mount it over a MemoryStore. Thread-safe (the Store is).
#pragma once

#include <atomic>

#include "raylight/v1/kv_store.grpc.pb.h"
#include "runtime/common/store.h"
#include "runtime/rpc/auth.h"

namespace raylight::rpc {

// The longest a Get may wait server-side; longer requests are refused (bounded before anything
// is held).
inline constexpr std::chrono::milliseconds kMaxKvWait = std::chrono::minutes(10);

// Where durable keys (KvSetRequest.durable) are kept besides the store: the head's database.
class DurableKvSink {
 public:
  virtual ~DurableKvSink() = default;
  virtual absl::Status Persist(const std::string& key, const std::string& value) = 0;
  virtual absl::Status Forget(const std::string& key) = 0;
};

// A Get that waits for its key holds a server thread while it waits: at most this many wait at
// once (issue #23, item 10: 400 waiters were 400 threads); more are refused with
// RESOURCE_EXHAUSTED. A group's rendezvous waits with one Get per rank.
inline constexpr int kDefaultMaxKvWaiters = 256;

class KvStoreService final : public v1::KvStore::Service {
 public:
  // `store` (and `durable`, when given) must outlive the service. Without a sink, durable sets
  // are refused.
  explicit KvStoreService(Store& store, ServerAuth auth = {}, DurableKvSink* durable = nullptr,
                          int max_waiters = kDefaultMaxKvWaiters)
      : store_(store), auth_(std::move(auth)), durable_(durable), max_waiters_(max_waiters) {}

  grpc::Status Set(grpc::ServerContext*, const v1::KvSetRequest*, v1::KvSetResponse*) override;
  grpc::Status Get(grpc::ServerContext*, const v1::KvGetRequest*, v1::KvGetResponse*) override;
  grpc::Status Check(grpc::ServerContext*, const v1::KvKeyRequest*, v1::KvCheckResponse*) override;
  grpc::Status Add(grpc::ServerContext*, const v1::KvAddRequest*, v1::KvAddResponse*) override;
  grpc::Status CompareSet(grpc::ServerContext*, const v1::KvCompareSetRequest*,
                          v1::KvValueResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::KvKeyRequest*,
                      v1::KvDeleteResponse*) override;
  grpc::Status NumKeys(grpc::ServerContext*, const v1::KvNumKeysRequest*,
                       v1::KvNumKeysResponse*) override;

  int waiters() const { return waiters_.load(); }  // Gets with a timeout in progress

 private:
  Store& store_;
  const ServerAuth auth_;
  DurableKvSink* const durable_;
  const int max_waiters_;
  std::atomic<int> waiters_{0};  // Gets with a timeout in progress
};

}  // namespace raylight::rpc
