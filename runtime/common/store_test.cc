// Runs the Store conformance suite on the in-process and file stores.
#include "runtime/common/file_store.h"
#include "runtime/common/memory_store.h"
#include "runtime/common/store_conformance.h"

namespace raylight {
namespace {

INSTANTIATE_TEST_SUITE_P(
    LocalStores, StoreConformanceTest,
    testing::Values(StoreFactory{"Memory",
                                 [](const std::string&) -> std::unique_ptr<Store> {
                                   return std::make_unique<MemoryStore>();
                                 }},
                    StoreFactory{"File",
                                 [](const std::string& scratch) -> std::unique_ptr<Store> {
                                   auto store = FileStore::Open(scratch);
                                   return store.ok() ? std::move(*store) : nullptr;
                                 }}),
    StoreFactoryName);

}  // namespace
}  // namespace raylight
