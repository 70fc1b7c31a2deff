// The head a toy-family deployment runs: raylight-head's job kinds, the toy family registered
// first. Nothing outside tests/family knows the toy.
#include <iostream>

#include "actors/diffusion/diffusion_job_kind.h"
#include "runtime/head/head_main.h"
#include "tests/family/toy_family.h"

int main(int argc, char** argv) {
  if (absl::Status registered = raylight::toy_family::RegisterToyFamily(); !registered.ok()) {
    std::cerr << registered << "\n";
    return 1;
  }
  return raylight::head::RunHead(
      argc, argv, [](const raylight::head::HeadConfig& config, raylight::head::JobKinds& kinds) {
        raylight::actors::RegisterDiffusionJobKinds(kinds, config.model_roots);
      });
}
