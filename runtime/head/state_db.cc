#include "runtime/head/state_db.h"

#include <sqlite3.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace raylight::head {
namespace {

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("state database: ", what, ": ", sqlite3_errmsg(db)));
}

// Leaves a cached statement reset with no bindings when the scope ends, whatever the outcome.
class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* const stmt_;
};

// Every row of `table` parsed as a Message, with its key; `what` names a row in errors.
template <typename Message>
absl::StatusOr<std::vector<std::pair<std::string, Message>>> ParseRows(
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> rows, const char* what) {
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<std::string, Message>> parsed;
  for (const auto& [id, value] : *rows) {
    Message message;
    if (!message.ParseFromString(value)) {
      return absl::DataLossError(
          absl::StrCat("state database: ", what, " ", id, " does not parse"));
    }
    parsed.emplace_back(id, std::move(message));
  }
  return parsed;
}

template <typename Message>
absl::StatusOr<std::vector<Message>> ParseValues(
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> rows, const char* what) {
  auto parsed = ParseRows<Message>(std::move(rows), what);
  if (!parsed.ok()) return parsed.status();
  std::vector<Message> values;
  for (auto& [id, message] : *parsed) values.push_back(std::move(message));
  return values;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateDb>> StateDb::Open(const std::string& state_dir) {
  std::error_code error;
  std::filesystem::create_directories(state_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir: cannot create ", state_dir, ": ", error.message()));
  }
  const std::string path = absl::StrCat(state_dir, "/head.sqlite");
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    absl::Status status = SqliteError(db, absl::StrCat("open ", path));
    sqlite3_close(db);
    return status;
  }
  std::unique_ptr<StateDb> state(new StateDb(db));
  // Exclusive locking must be set before WAL is entered so that WAL needs no shared memory. The
  // empty write transaction takes the lock now: a second head on this state directory fails
  // here, at start, not at its first write.
  for (const char* sql :
       {"PRAGMA locking_mode=EXCLUSIVE", "BEGIN IMMEDIATE; COMMIT;", "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "CREATE TABLE IF NOT EXISTS actors (id TEXT PRIMARY KEY, value BLOB)",
        "CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, value BLOB)",
        "CREATE TABLE IF NOT EXISTS kv (id TEXT PRIMARY KEY, value BLOB)",
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, value BLOB)",
        "CREATE TABLE IF NOT EXISTS job_plans (id TEXT PRIMARY KEY, value BLOB)"}) {
    absl::Status status = state->Exec(sql);
    if (absl::IsUnavailable(status)) {
      return absl::FailedPreconditionError(absl::StrCat("state_dir: ", state_dir,
                                                        " is in use by another raylight-head (",
                                                        status.message(), ")"));
    }
    if (!status.ok()) return status;
  }
  return state;
}

StateDb::~StateDb() {
  {
    absl::MutexLock lock(&mu_);
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  }
  sqlite3_close(db_);
}

sqlite3_stmt* StateDb::Prepared(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return nullptr;
  statements_.emplace(sql, stmt);
  return stmt;
}

absl::Status StateDb::Exec(const char* sql) {
  absl::MutexLock lock(&mu_);
  char* message = nullptr;
  if (int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message); rc != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    std::string what = absl::StrCat("state database: ", sql, ": ", text);
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? absl::UnavailableError(what)
                                                    : absl::InternalError(what);
  }
  return absl::OkStatus();
}

absl::Status StateDb::Put(const char* table, const std::string& key, const std::string& value) {
  absl::MutexLock lock(&mu_);
  Statement statement(Prepared(absl::StrCat("INSERT OR REPLACE INTO ", table, " VALUES (?, ?)")));
  if (statement.get() == nullptr) return SqliteError(db_, "prepare");
  sqlite3_bind_text(statement.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_blob(statement.get(), 2, value.data(), static_cast<int>(value.size()),
                    SQLITE_STATIC);
  if (sqlite3_step(statement.get()) != SQLITE_DONE) return SqliteError(db_, "write");
  return absl::OkStatus();
}

absl::Status StateDb::Delete(const char* table, const std::string& key) {
  absl::MutexLock lock(&mu_);
  Statement statement(Prepared(absl::StrCat("DELETE FROM ", table, " WHERE id = ?")));
  if (statement.get() == nullptr) return SqliteError(db_, "prepare");
  sqlite3_bind_text(statement.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  if (sqlite3_step(statement.get()) != SQLITE_DONE) return SqliteError(db_, "delete");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StateDb::LoadAll(
    const char* table) {
  absl::MutexLock lock(&mu_);
  Statement statement(Prepared(absl::StrCat("SELECT id, value FROM ", table)));
  if (statement.get() == nullptr) return SqliteError(db_, "prepare");
  std::vector<std::pair<std::string, std::string>> rows;
  int rc;
  while ((rc = sqlite3_step(statement.get())) == SQLITE_ROW) {
    const char* key = reinterpret_cast<const char*>(sqlite3_column_text(statement.get(), 0));
    const char* blob = static_cast<const char*>(sqlite3_column_blob(statement.get(), 1));
    int size = sqlite3_column_bytes(statement.get(), 1);
    rows.emplace_back(key ? key : "", std::string(blob ? blob : "", size));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "read");
  return rows;
}

absl::Status StateDb::PutActor(const v1::ActorInfo& actor) {
  return Put("actors", actor.spec().actor_id(), actor.SerializeAsString());
}
absl::Status StateDb::DeleteActor(const std::string& actor_id) {
  return Delete("actors", actor_id);
}

absl::StatusOr<std::vector<v1::ActorInfo>> StateDb::LoadActors() {
  return ParseValues<v1::ActorInfo>(LoadAll("actors"), "actor");
}

absl::Status StateDb::PutGroup(const v1::GroupInfo& group) {
  return Put("groups", group.group_id(), group.SerializeAsString());
}
absl::Status StateDb::DeleteGroup(const std::string& group_id) {
  return Delete("groups", group_id);
}

absl::StatusOr<std::vector<v1::GroupInfo>> StateDb::LoadGroups() {
  return ParseValues<v1::GroupInfo>(LoadAll("groups"), "group");
}

absl::Status StateDb::PutJob(const v1::JobInfo& job) {
  return Put("jobs", job.job_id(), job.SerializeAsString());
}

absl::Status StateDb::PutJobPlan(const std::string& job_id, const v1::JobPlan& plan) {
  return Put("job_plans", job_id, plan.SerializeAsString());
}

absl::Status StateDb::DeleteJobPlan(const std::string& job_id) {
  return Delete("job_plans", job_id);
}

absl::Status StateDb::DeleteJob(const std::string& job_id) {
  if (absl::Status status = Delete("job_plans", job_id); !status.ok()) return status;
  return Delete("jobs", job_id);
}

absl::StatusOr<std::vector<v1::JobInfo>> StateDb::LoadJobs() {
  return ParseValues<v1::JobInfo>(LoadAll("jobs"), "job");
}

absl::StatusOr<std::vector<std::pair<std::string, v1::JobPlan>>> StateDb::LoadJobPlans() {
  return ParseRows<v1::JobPlan>(LoadAll("job_plans"), "plan of job");
}

absl::Status StateDb::Persist(const std::string& key, const std::string& value) {
  return Put("kv", key, value);
}
absl::Status StateDb::Forget(const std::string& key) { return Delete("kv", key); }
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StateDb::LoadKv() {
  return LoadAll("kv");
}

}  // namespace raylight::head
