// The body of a raylight-worker binary: parses its flags, serves the Worker service, registers
// with the head and runs until SIGTERM/SIGINT or a Shutdown RPC. The binary's main() fills the
// ActorRegistry with the classes it can host (actors/worker_main.cc) and calls this.
#pragma once

#include "runtime/worker/actor_registry.h"

namespace raylight::worker {

int RunWorker(int argc, char** argv, const ActorRegistry& registry);

}  // namespace raylight::worker
