// raylight-head's configuration: one struct with its defaults, filled by one flag table.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "runtime/rpc/security.h"

namespace CLI {
class App;
}

namespace raylight::head {

struct HeadConfig {
  // Loopback unless told otherwise: a head that other machines reach needs --host (and then a
  // cluster token and TLS, or --insecure).
  std::string bind_host = "127.0.0.1";
  rpc::SecurityFlags security;  // tokens, TLS, --insecure
  int port = 6380;              // 0: any free port (written to --port-file)
  std::string port_file;        // where the bound port is written once serving (tests, raylightctl)
  std::string state_dir;        // SQLite state and logs; required
  // Nodes and workers heartbeat this often...
  absl::Duration heartbeat_period = absl::Seconds(1);
  // ...and are declared dead after this long without one (Ray: 15 to 65 s by default).
  absl::Duration deadline = absl::Seconds(5);
  // A dead node (and its dead workers) is listed this long, then forgotten: a node that restarts
  // comes back under a new id, so the dead would pile up in ClusterState.
  absl::Duration dead_node_retention = absl::Minutes(10);
  // First restart delay of a crashed actor; doubles per restart up to max_restart_backoff.
  absl::Duration restart_backoff = absl::Milliseconds(100);
  absl::Duration max_restart_backoff = absl::Seconds(5);
  // How long CreateGroup waits for a group to form when the request sets no timeout.
  absl::Duration group_form_timeout = absl::Seconds(120);

  // ---- jobs ----
  // Directories jobs may read models from (job kinds resolve model names inside them only).
  std::vector<std::string> model_roots;
  // Past this many pending and running jobs, SubmitJob answers RESOURCE_EXHAUSTED.
  int max_queued_jobs = 1000;
  // Attempts after the first when a run fails for a reason outside the job.
  int job_max_retries = 3;
  // First wait before a failed job runs again; doubles per failure.
  absl::Duration job_retry_backoff = absl::Milliseconds(500);
  // An ended job (its row, its result file) is kept this long after it ended, then forgotten
  // (issue #23, item 10: history grew forever).
  absl::Duration job_retention = absl::Hours(24 * 7);
  // Bound on one run of a job (every rank's call).
  absl::Duration job_timeout = absl::Hours(12);
  // Once one rank's call of a run has ended (its result in, or its cancel sent), the others have
  // this long to end too; then their calls are cancelled and their workers abort the group's
  // collectives (the group is formed again). A rank that fails aborts the others at once.
  absl::Duration rank_grace = absl::Seconds(5);
  // A cancelled job's ranks stop together at the next model call (its group kept as it is); one
  // still running this long after the cancel (a step longer than this, a rank stuck) is aborted.
  absl::Duration cancel_grace = absl::Seconds(60);
};

void AddHeadFlags(CLI::App& app, HeadConfig& config);

}  // namespace raylight::head
