// StateDb: what the head keeps across restarts, in SQLite in its state directory — actor specs
// with names and restart budgets, groups, and KV entries marked durable. Writes go through at
// once (WAL journal), so a kill -9 of the head loses nothing acknowledged.
//
// Not thread-safe by itself: the head's manager uses it from its one thread; the KV service's
// durable writes serialize on the internal mutex.
#pragma once

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "raylight/v1/common.pb.h"
#include "runtime/rpc/kv_service.h"

struct sqlite3;

namespace raylight::head {

class StateDb final : public rpc::DurableKvSink {
 public:
  // Opens (creating) `<state_dir>/head.sqlite`.
  static absl::StatusOr<std::unique_ptr<StateDb>> Open(const std::string& state_dir);
  ~StateDb() override;
  StateDb(const StateDb&) = delete;
  StateDb& operator=(const StateDb&) = delete;

  absl::Status PutActor(const v1::ActorInfo& actor);
  absl::Status DeleteActor(const std::string& actor_id);
  absl::StatusOr<std::vector<v1::ActorInfo>> LoadActors();

  absl::Status PutGroup(const v1::GroupInfo& group);
  absl::Status DeleteGroup(const std::string& group_id);
  absl::StatusOr<std::vector<v1::GroupInfo>> LoadGroups();

  // rpc::DurableKvSink
  absl::Status Persist(const std::string& key, const std::string& value) override;
  absl::Status Forget(const std::string& key) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LoadKv();

 private:
  explicit StateDb(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::Status Put(const char* table, const std::string& key, const std::string& value);
  absl::Status Delete(const char* table, const std::string& key);
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LoadAll(const char* table);

  absl::Mutex mu_;
  sqlite3* const db_;
};

}  // namespace raylight::head
