// raylight-head: the cluster's control plane (runtime/head) with the job kinds this build offers.
#include "runtime/head/head_main.h"

#include "actors/diffusion/diffusion_job_kind.h"

int main(int argc, char** argv) {
  return raylight::head::RunHead(
      argc, argv, [](const raylight::head::HeadConfig& config, raylight::head::JobKinds& kinds) {
        raylight::actors::RegisterDiffusionJobKinds(kinds, config.model_roots);
      });
}
