#include "models/parallel/comm/c10d_store_adapter.h"

#include <c10/util/Exception.h>

namespace raylight::comm {
namespace {

template <typename T>
T ValueOrThrow(absl::StatusOr<T> result) {
  if (!result.ok()) C10_THROW_ERROR(DistStoreError, std::string(result.status().ToString()));
  return *std::move(result);
}

void OkOrThrow(const absl::Status& status) {
  if (!status.ok()) C10_THROW_ERROR(DistStoreError, std::string(status.ToString()));
}

std::string AsString(const std::vector<uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

std::vector<uint8_t> AsBytes(const std::string& text) {
  return std::vector<uint8_t>(text.begin(), text.end());
}

}  // namespace

C10dStoreAdapter::C10dStoreAdapter(raylight::Store& store, std::chrono::milliseconds timeout)
    : c10d::Store(timeout), store_(store) {}

c10::intrusive_ptr<c10d::Store> C10dStoreAdapter::clone() {
  return c10::make_intrusive<C10dStoreAdapter>(store_, timeout_);
}

void C10dStoreAdapter::set(const std::string& key, const std::vector<uint8_t>& value) {
  OkOrThrow(store_.Set(key, AsString(value)));
}

std::vector<uint8_t> C10dStoreAdapter::compareSet(const std::string& key,
                                                  const std::vector<uint8_t>& expected,
                                                  const std::vector<uint8_t>& desired) {
  return AsBytes(ValueOrThrow(store_.CompareSet(key, AsString(expected), AsString(desired))));
}

std::vector<uint8_t> C10dStoreAdapter::get(const std::string& key) {
  return AsBytes(ValueOrThrow(store_.Get(key, timeout_)));
}

int64_t C10dStoreAdapter::add(const std::string& key, int64_t value) {
  return ValueOrThrow(store_.Add(key, value));
}

bool C10dStoreAdapter::deleteKey(const std::string& key) {
  return ValueOrThrow(store_.Delete(key));
}

bool C10dStoreAdapter::check(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    if (!ValueOrThrow(store_.Check(key))) return false;
  }
  return true;
}

int64_t C10dStoreAdapter::getNumKeys() { return ValueOrThrow(store_.NumKeys()); }

void C10dStoreAdapter::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void C10dStoreAdapter::wait(const std::vector<std::string>& keys,
                            const std::chrono::milliseconds& timeout) {
  OkOrThrow(store_.Wait(keys, timeout));
}

}  // namespace raylight::comm
