// The Store conformance suite over gRPC: a KvStoreService on a real loopback port, a GrpcStore
// client talking to it. Also checks that bad requests get INVALID_ARGUMENT naming the field.
#include "runtime/rpc/grpc_store.h"

#include <grpcpp/grpcpp.h>

#include "raylight/v1/kv_store.grpc.pb.h"
#include "runtime/common/memory_store.h"
#include "runtime/common/store_conformance.h"
#include "runtime/rpc/kv_service.h"

namespace raylight::rpc {
namespace {

// A KvStoreService over a MemoryStore on an OS-chosen loopback port, and a client of it.
class ServedStore final : public Store {
 public:
  ServedStore() : service_(backing_) {
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

}  // namespace
}  // namespace raylight::rpc
