#include "models/parallel/mesh_plan.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace raylight::parallel {

std::string MeshShape::ToString() const {
  return absl::StrCat("dp=", dp, " cfg=", cfg, " ring=", ring, " ulysses=", ulysses);
}

absl::StatusOr<MeshShape> ParseMeshShape(const std::string& text) {
  MeshShape shape;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    int value = 0;
    if (!absl::SimpleAtoi(kv.second, &value)) {
      return absl::InvalidArgumentError(absl::StrCat("mesh: '", part, "' is not axis=degree"));
    }
    const std::string axis(absl::StripAsciiWhitespace(kv.first));
    if (axis == "dp") {
      shape.dp = value;
    } else if (axis == "cfg") {
      shape.cfg = value;
    } else if (axis == "ring") {
      shape.ring = value;
    } else if (axis == "ulysses") {
      shape.ulysses = value;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("mesh: unknown axis '", axis, "' (dp, cfg, ring, ulysses)"));
    }
  }
  return shape;
}

MeshCoords CoordsOf(const MeshShape& s, int rank) {
  MeshCoords c;
  c.ulysses = rank % s.ulysses;
  rank /= s.ulysses;
  c.ring = rank % s.ring;
  rank /= s.ring;
  c.cfg = rank % s.cfg;
  c.dp = rank / s.cfg;
  return c;
}

int RankOf(const MeshShape& s, const MeshCoords& c) {
  return ((c.dp * s.cfg + c.cfg) * s.ring + c.ring) * s.ulysses + c.ulysses;
}

std::vector<int> ValidUlyssesDegrees(int heads) {
  std::vector<int> degrees;
  for (int d = 2; d <= 8; ++d) {
    if (heads % d == 0) degrees.push_back(d);
  }
  return degrees;
}

absl::StatusOr<MeshPlan> PlanMesh(const MeshShape& shape, int world_size, int heads,
                                  double cfg_scale) {
  for (auto [name, degree] : {std::pair{"dp", shape.dp}, std::pair{"cfg", shape.cfg},
                              std::pair{"ring", shape.ring}, std::pair{"ulysses", shape.ulysses}}) {
    if (degree < 1 || degree > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("mesh.", name, ": degree ", degree, " is outside [1, 1024]"));
    }
  }
  if (shape.world() != world_size) {
    return absl::InvalidArgumentError(absl::StrCat("mesh: ", shape.ToString(), " needs ",
                                                   shape.world(), " ranks; the group has ",
                                                   world_size));
  }
  if (shape.cfg > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("mesh.cfg: degree ", shape.cfg, " (CFG splits into cond and uncond: 1 or 2)"));
  }
  if (heads % shape.ulysses != 0) {
    const std::vector<int> valid = ValidUlyssesDegrees(heads);
    return absl::InvalidArgumentError(absl::StrCat(
        "mesh.ulysses: degree ", shape.ulysses, " does not divide the model's ", heads,
        " attention heads (valid degrees: ", valid.empty() ? "none" : absl::StrJoin(valid, ", "),
        "; use ring for the rest)"));
  }
  MeshPlan plan;
  plan.shape = shape;
  plan.split_cfg = shape.cfg == 2;
  if (shape.cfg == 2 && cfg_scale == 1.0) {
    plan.split_cfg = false;
    plan.notes.push_back(
        "mesh.cfg: degree 2 with cfg = 1 has nothing to split (no uncond pass); running "
        "without CFG parallelism, the two cfg halves compute the same prediction");
  }
  return plan;
}

}  // namespace raylight::parallel
