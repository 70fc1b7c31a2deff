#include "runtime/head/head_config.h"

#include <CLI/CLI.hpp>

namespace raylight::head {
namespace {

// A duration flag given in milliseconds.
void AddMillis(CLI::App& app, const std::string& name, absl::Duration& target,
               const std::string& help) {
  app.add_option_function<int64_t>(
         name, [&target](int64_t ms) { target = absl::Milliseconds(ms); }, help)
      ->default_str(std::to_string(absl::ToInt64Milliseconds(target)))
      ->check(CLI::PositiveNumber);
}

}  // namespace

void AddHeadFlags(CLI::App& app, HeadConfig& config) {
  app.add_option("--host", config.bind_host,
                 "address to listen on (0.0.0.0: every interface; needs a token and TLS, or "
                 "--insecure)")
      ->capture_default_str();
  rpc::AddSecurityFlags(app, config.security);
  app.add_option("--port", config.port, "port to listen on (0: any free port)")
      ->capture_default_str();
  app.add_option("--port-file", config.port_file, "write the bound port here once serving");
  app.add_option("--state-dir", config.state_dir, "directory for the state database")
      ->required()
      ->envname("RAYLIGHT_STATE_DIR");
  AddMillis(app, "--heartbeat-ms", config.heartbeat_period,
            "heartbeat period of nodes and workers");
  AddMillis(app, "--deadline-ms", config.deadline,
            "a node or worker silent this long is marked dead");
  AddMillis(app, "--dead-node-retention-ms", config.dead_node_retention,
            "a dead node and its workers are listed this long, then forgotten");
  AddMillis(app, "--restart-backoff-ms", config.restart_backoff, "first actor restart delay");
  AddMillis(app, "--group-timeout-ms", config.group_form_timeout,
            "default bound on forming a group");
  app.add_option("--model-root", config.model_roots,
                 "a directory jobs may read models from (repeatable)")
      ->envname("RAYLIGHT_MODEL_ROOTS")
      ->delimiter(':');
  app.add_option("--max-queued-jobs", config.max_queued_jobs,
                 "pending + running jobs before SubmitJob refuses more")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--job-max-retries", config.job_max_retries,
                 "re-runs of a job whose run failed for a reason outside it")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  AddMillis(app, "--job-retention-ms", config.job_retention,
            "an ended job and its result are kept this long, then forgotten");
  AddMillis(app, "--job-retry-backoff-ms", config.job_retry_backoff,
            "first wait before a failed job runs again");
  AddMillis(app, "--rank-grace-ms", config.rank_grace,
            "once rank 0 of a run ended, the other ranks are aborted after this");
  AddMillis(app, "--cancel-grace-ms", config.cancel_grace,
            "a cancelled job still running this long after the cancel is aborted");
}

}  // namespace raylight::head
