// Presents a raylight::Store as a c10d::Store, for libtorch's ProcessGroupGloo rendezvous.
// c10d reports failures by exception; this adapter throws c10::DistStoreError carrying the
// Status message, and the communicator turns it back into a Status at its boundary.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "runtime/common/store.h"

namespace raylight::comm {

class C10dStoreAdapter final : public c10d::Store {
 public:
  // `store` must outlive this adapter and every clone of it.
  C10dStoreAdapter(raylight::Store& store, std::chrono::milliseconds timeout);

  c10::intrusive_ptr<c10d::Store> clone() override;
  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                  const std::vector<uint8_t>& desired) override;
  std::vector<uint8_t> get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t value) override;
  bool deleteKey(const std::string& key) override;
  bool check(const std::vector<std::string>& keys) override;
  int64_t getNumKeys() override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  raylight::Store& store_;
};

}  // namespace raylight::comm
