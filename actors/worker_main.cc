// raylight-worker: the runtime's worker loop with every actor class this build can host.
#include "runtime/worker/worker_main.h"

#include "actors/diffusion/diffusion_actor.h"
#include "actors/testing/test_actor.h"

int main(int argc, char** argv) {
  raylight::worker::ActorRegistry registry;
  raylight::actors::RegisterTestActor(registry);
  raylight::actors::RegisterDiffusionActor(registry);
  return raylight::worker::RunWorker(argc, argv, registry);
}
