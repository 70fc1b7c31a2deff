#include "models/parallel/mesh.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace raylight::parallel {

absl::StatusOr<std::unique_ptr<Mesh>> Mesh::Build(comm::Communicator& world,
                                                  const MeshShape& shape) {
  if (shape.world() != world.size()) {
    return absl::InvalidArgumentError(absl::StrCat("mesh: ", shape.ToString(), " needs ",
                                                   shape.world(), " ranks; the group has ",
                                                   world.size()));
  }
  auto mesh = std::unique_ptr<Mesh>(new Mesh());
  mesh->shape_ = shape;
  const MeshCoords c = CoordsOf(shape, world.rank());
  mesh->coords_ = c;
  // Every rank makes the same Split calls in the same order (Split is collective); the color
  // names the group (the other coordinates), the key orders ranks inside it.
  auto split = [&](int degree, int color, int key,
                   std::unique_ptr<comm::Communicator>& out) -> absl::Status {
    if (degree == 1) return absl::OkStatus();
    auto made = world.Split(color, key);
    if (!made.ok()) return made.status();
    out = *std::move(made);
    return absl::OkStatus();
  };
  const MeshShape& s = shape;
  absl::Status status =
      split(s.ulysses, (c.dp * s.cfg + c.cfg) * s.ring + c.ring, c.ulysses, mesh->ulysses_);
  if (status.ok()) {
    status = split(s.ring, (c.dp * s.cfg + c.cfg) * s.ulysses + c.ulysses, c.ring, mesh->ring_);
  }
  if (status.ok()) {
    status = split(s.ring * s.ulysses, c.dp * s.cfg + c.cfg, c.ring * s.ulysses + c.ulysses,
                   mesh->sequence_);
  }
  if (status.ok()) {
    status = split(s.cfg, (c.dp * s.ring + c.ring) * s.ulysses + c.ulysses, c.cfg, mesh->cfg_);
  }
  if (status.ok()) {
    status = split(s.dp, (c.cfg * s.ring + c.ring) * s.ulysses + c.ulysses, c.dp, mesh->dp_);
  }
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("mesh ", shape.ToString(), ": ", status.message()));
  }
  return mesh;
}

models::ParallelContext Mesh::sequence_context() const {
  models::ParallelContext p;
  p.ulysses_degree = shape_.ulysses;
  p.ring_degree = shape_.ring;
  p.ulysses = ulysses_.get();
  p.ring = ring_.get();
  p.sequence = sequence_.get();
  p.ulysses_rank = coords_.ulysses;
  p.ring_rank = coords_.ring;
  return p;
}

}  // namespace raylight::parallel
