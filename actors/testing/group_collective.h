// GroupCollective: the test actor's communicator for one group membership — the torch side of the
// test actor, kept out of the protobuf side (DESIGN.md rule 1: no file sees both). Created from
// the group's Store (the head's KV service): Gloo for CPU workers, NCCL for GPU workers.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/worker/actor.h"

namespace raylight::actors {

class GroupCollective {
 public:
  // Blocks until every rank of the group has joined (or `timeout`).
  static absl::StatusOr<std::unique_ptr<GroupCollective>> Create(
      const worker::GroupContext& group, const worker::ActorEnvironment& environment,
      std::chrono::milliseconds timeout);
  ~GroupCollective();

  absl::StatusOr<std::vector<float>> AllReduceSum(std::vector<float> values);
  std::string backend() const;

 private:
  class Impl;
  explicit GroupCollective(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace raylight::actors
