// One rank of a sequence-parallel Flux forward, for flux_parallel_test: joins a Gloo group through
// a FileStore, builds the mesh, loads the checkpoint (resident or FSDP-sharded over the group),
// runs one forward on inputs every rank regenerates from --input_seed, and rank 0 writes the
// prediction to --out as "forward".
#include <ATen/CPUGeneratorImpl.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "models/core/safetensors_tensors.h"
#include "models/flux/flux_loader.h"
#include "models/flux/flux_model.h"
#include "models/parallel/comm/gloo_communicator.h"
#include "models/parallel/mesh.h"
#include "runtime/common/file_store.h"
#include "tests/models/flux_test_util.h"

ABSL_FLAG(int, rank, 0, "this process's rank");
ABSL_FLAG(int, size, 1, "number of ranks");
ABSL_FLAG(std::string, store_dir, "", "FileStore directory shared by the ranks");
ABSL_FLAG(std::string, checkpoint, "", "Flux checkpoint");
ABSL_FLAG(std::string, mesh, "", "ring=..,ulysses=.. (omitted axes are 1)");
ABSL_FLAG(std::string, placement, "resident", "resident or fsdp");
ABSL_FLAG(int64_t, batch, 1, "batch");
ABSL_FLAG(int64_t, height, 8, "latent height");
ABSL_FLAG(int64_t, width, 12, "latent width");
ABSL_FLAG(int64_t, text_tokens, 7, "T5 tokens");
ABSL_FLAG(uint64_t, input_seed, 1, "seed of the random inputs");
ABSL_FLAG(std::string, references, "", "Kontext reference latents: HxW,HxW (random, seeded)");
ABSL_FLAG(std::string, out, "", "rank 0 writes the prediction here");

namespace raylight {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "rank " << absl::GetFlag(FLAGS_rank) << ": " << status << std::endl;
  return 1;
}

int Run() {
  const int rank = absl::GetFlag(FLAGS_rank), size = absl::GetFlag(FLAGS_size);
  auto shape = parallel::ParseMeshShape(absl::GetFlag(FLAGS_mesh));
  if (!shape.ok()) return Fail(shape.status());
  auto store = FileStore::Open(absl::GetFlag(FLAGS_store_dir));
  if (!store.ok()) return Fail(store.status());
  comm::GlooOptions options;
  options.hostname = "127.0.0.1";
  auto world = comm::CreateGlooCommunicator(**store, rank, size, options);
  if (!world.ok()) return Fail(world.status());
  auto mesh = parallel::Mesh::Build(**world, *shape);
  if (!mesh.ok()) return Fail(mesh.status());
  const models::WeightPlacement placement = absl::GetFlag(FLAGS_placement) == "fsdp"
                                                ? models::WeightPlacement::Sharded(**world)
                                                : models::WeightPlacement::Resident();
  auto loaded = models::flux::LoadFlux({absl::GetFlag(FLAGS_checkpoint)},
                                       models::PlacementOptions{}, placement);
  if (!loaded.ok()) return Fail(loaded.status());
  models::flux::FluxInputs inputs =
      testing_util::RandomFluxInputs(loaded->config,
                                     {absl::GetFlag(FLAGS_batch), absl::GetFlag(FLAGS_height),
                                      absl::GetFlag(FLAGS_width), absl::GetFlag(FLAGS_text_tokens)},
                                     absl::GetFlag(FLAGS_input_seed));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(absl::GetFlag(FLAGS_input_seed) + 1);
  for (absl::string_view size :
       absl::StrSplit(absl::GetFlag(FLAGS_references), ',', absl::SkipEmpty())) {
    const std::vector<std::string> sides = absl::StrSplit(size, 'x');
    int64_t h = 0, w = 0;
    if (sides.size() != 2 || !absl::SimpleAtoi(sides[0], &h) || !absl::SimpleAtoi(sides[1], &w)) {
      return Fail(absl::InvalidArgumentError("references: HxW,HxW"));
    }
    inputs.references.push_back(
        at::randn({absl::GetFlag(FLAGS_batch), loaded->config.latent_channels, h, w}, gen));
  }
  auto out = models::flux::FluxForward(loaded->config, inputs, (*mesh)->sequence_context(),
                                       *loaded->weights);
  if (!out.ok()) return Fail(out.status());
  if (rank == 0) {
    auto written = models::WriteTensors(absl::GetFlag(FLAGS_out), {{"forward", *out}});
    if (!written.ok()) return Fail(written);
  }
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return raylight::Run();
}
