// The Store conformance suite over gRPC: a KvStoreService on a real loopback port, a GrpcStore
// client talking to it. Also checks that bad requests get INVALID_ARGUMENT naming the field.
#include "runtime/rpc/grpc_store.h"

#include <grpcpp/grpcpp.h>

#include <thread>
#include <vector>

#include "raylight/v1/kv_store.grpc.pb.h"
#include "runtime/common/memory_store.h"
#include "runtime/common/store_conformance.h"
#include "runtime/rpc/kv_service.h"

namespace raylight::rpc {
namespace {

// A KvStoreService over a MemoryStore on an OS-chosen loopback port, and a client of it.
class ServedStore final : public Store {
 public:
  explicit ServedStore(int max_waiters = kDefaultMaxKvWaiters)
      : service_(backing_, {}, nullptr, max_waiters) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    client_ = std::make_unique<GrpcStore>(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }
  ~ServedStore() override {
    client_.reset();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  bool serving() const { return server_ != nullptr && port_ > 0; }
  int waiters() const { return service_.waiters(); }
  int port() const { return port_; }

  absl::Status Set(absl::string_view k, absl::string_view v) override { return client_->Set(k, v); }
  absl::StatusOr<std::string> Get(absl::string_view k, std::chrono::milliseconds t) override {
    return client_->Get(k, t);
  }
  absl::StatusOr<bool> Check(absl::string_view k) override { return client_->Check(k); }
  absl::StatusOr<int64_t> Add(absl::string_view k, int64_t d) override {
    return client_->Add(k, d);
  }
  absl::StatusOr<std::string> CompareSet(absl::string_view k, absl::string_view e,
                                         absl::string_view d) override {
    return client_->CompareSet(k, e, d);
  }
  absl::StatusOr<bool> Delete(absl::string_view k) override { return client_->Delete(k); }
  absl::StatusOr<int64_t> NumKeys() override { return client_->NumKeys(); }

 private:
  MemoryStore backing_;
  KvStoreService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcStore> client_;
};

INSTANTIATE_TEST_SUITE_P(OverGrpc, StoreConformanceTest,
                         testing::Values(StoreFactory{
                             "Grpc",
                             [](const std::string&) -> std::unique_ptr<Store> {
                               auto store = std::make_unique<ServedStore>();
                               if (!store->serving()) return nullptr;
                               return store;
                             }}),
                         StoreFactoryName);

TEST(KvStoreService, BadRequestsNameTheField) {
  ServedStore served;
  ASSERT_TRUE(served.serving());
  auto stub = v1::KvStore::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", served.port()),
                                                       grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    v1::KvGetRequest request;
    request.set_key("k");
    request.set_timeout_ms(-5);
    v1::KvGetResponse response;
    grpc::Status status = stub->Get(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("timeout_ms"), std::string::npos);
  }
  {
    grpc::ClientContext context;
    v1::KvSetRequest request;  // empty key
    v1::KvSetResponse response;
    grpc::Status status = stub->Set(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("key"), std::string::npos);
  }
}

// Issue #23, item 10: every waiting Get holds a server thread. At most max_waiters wait; one more
// is refused at once, a Get that does not wait still answers, and the waiters get their value.
TEST(KvStoreService, WaitingGetsAreBounded) {
  ServedStore store(/*max_waiters=*/2);
  ASSERT_TRUE(store.serving());
  std::vector<absl::StatusOr<std::string>> results(2, absl::UnknownError("not run"));
  std::vector<std::thread> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&, i] { results[i] = store.Get("late", std::chrono::seconds(20)); });
  }
  for (int attempt = 0; attempt < 500 && store.waiters() < 2; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(store.waiters(), 2);
  auto third = store.Get("late", std::chrono::milliseconds(50));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_NE(third.status().message().find("2 gets are already waiting"), std::string::npos);
  EXPECT_EQ(store.Get("late", std::chrono::milliseconds(0)).status().code(),
            absl::StatusCode::kDeadlineExceeded);  // does not wait, so not refused
  ASSERT_TRUE(store.Set("late", "value").ok());
  for (std::thread& waiter : waiters) waiter.join();
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(*result, "value");
  }
}

}  // namespace
}  // namespace raylight::rpc
