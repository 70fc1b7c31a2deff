// The body of a raylight-head binary: parses its flags, serves the Head, Jobs and KV services,
// and runs until SIGTERM/SIGINT. The binary's main() (actors/head_main.cc) registers the job
// kinds it offers — as raylight-worker's main registers the actor classes it hosts — so that the
// runtime never depends on what a job computes.
#pragma once

#include <functional>

#include "runtime/head/head_config.h"
#include "runtime/head/job_kind.h"

namespace raylight::head {

using JobKindRegistrar = std::function<void(const HeadConfig& config, JobKinds& kinds)>;

int RunHead(int argc, char** argv, const JobKindRegistrar& register_kinds);

}  // namespace raylight::head
