// StateDb: what the head keeps across restarts, in SQLite in its state directory — actor specs
// with names and restart budgets, groups, jobs, and KV entries marked durable. Writes go through at
// once (WAL journal), so a kill -9 of the head loses nothing acknowledged.
//
// The database is opened in exclusive locking mode: the head is its only user, which saves two
// file locks per write, and a second head started on the same state directory fails at once
// instead of corrupting the first one's view. Statements are prepared once and reused.
//
// Thread-safe: the head's manager uses it from its one thread, the KV service's durable writes
// from gRPC threads; both serialize on the internal mutex.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "raylight/v1/common.pb.h"
#include "raylight/v1/jobs.pb.h"
#include "runtime/rpc/kv_service.h"

struct sqlite3;
struct sqlite3_stmt;

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

  // Jobs: their state (rewritten on every change) and their plan (written once, deleted when
  // the job ends: it holds the payload, which can be megabytes).
  absl::Status PutJob(const v1::JobInfo& job);
  absl::Status PutJobPlan(const std::string& job_id, const v1::JobPlan& plan);
  absl::Status DeleteJobPlan(const std::string& job_id);
  absl::Status DeleteJob(const std::string& job_id);  // its row and its plan
  absl::StatusOr<std::vector<v1::JobInfo>> LoadJobs();
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobPlan>>> LoadJobPlans();

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
  // The cached statement for `sql`, reset and ready to bind; null if it does not prepare.
  sqlite3_stmt* Prepared(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* const db_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mu_);
};

}  // namespace raylight::head
