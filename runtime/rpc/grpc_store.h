// GrpcStore: the Store interface over the head's KvStore gRPC service, so that ranks on
// different machines rendezvous through the head.
#pragma once

#include <memory>

#include "runtime/common/store.h"
#include "runtime/rpc/auth.h"

namespace grpc {
class Channel;
}

namespace raylight::rpc {

// Bound on every KV call that does not wait for a key.
inline constexpr std::chrono::milliseconds kKvCallTimeout = std::chrono::seconds(30);

class GrpcStore final : public Store {
 public:
  explicit GrpcStore(std::shared_ptr<grpc::Channel> channel, ClusterToken token = {});
  ~GrpcStore() override;

  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key,
                                  std::chrono::milliseconds timeout) override;
  absl::StatusOr<bool> Check(absl::string_view key) override;
  absl::StatusOr<int64_t> Add(absl::string_view key, int64_t delta) override;
  absl::StatusOr<std::string> CompareSet(absl::string_view key, absl::string_view expected,
                                         absl::string_view desired) override;
  absl::StatusOr<bool> Delete(absl::string_view key) override;
  absl::StatusOr<int64_t> NumKeys() override;

  // Set, and kept in the head's state database across head restarts.
  absl::Status SetDurable(absl::string_view key, absl::string_view value);

 private:
  class Client;  // keeps the generated gRPC code out of this header
  static absl::Status SetImpl(Client& client, absl::string_view key, absl::string_view value,
                              bool durable);
  std::unique_ptr<Client> client_;
};

}  // namespace raylight::rpc
