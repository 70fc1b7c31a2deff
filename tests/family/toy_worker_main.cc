// The worker a toy-family deployment runs: raylight-worker's DiffusionActor with the toy family's
// two halves registered first.
#include <iostream>

#include "actors/diffusion/diffusion_actor.h"
#include "runtime/worker/worker_main.h"
#include "tests/family/toy_family.h"

int main(int argc, char** argv) {
  for (const absl::Status& registered : {raylight::toy_family::RegisterToyFamily(),
                                         raylight::toy_family::RegisterToyFamilyModels()}) {
    if (!registered.ok()) {
      std::cerr << registered << "\n";
      return 1;
    }
  }
  raylight::worker::ActorRegistry registry;
  raylight::actors::RegisterDiffusionActor(registry);
  return raylight::worker::RunWorker(argc, argv, registry);
}
