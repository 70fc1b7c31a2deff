// A kind of job the head can queue: a plugin of the head binary that validates a job's payload
// and plans how it runs (which actor class on how many ranks, which SPMD method with which
// arguments). The runtime stays generic: it queues, places groups, calls, retries and stores
// results without knowing what the payload means (the diffusion kinds live in actors/diffusion).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "raylight/v1/head.pb.h"
#include "raylight/v1/jobs.pb.h"

namespace raylight::head {

class JobKind {
 public:
  virtual ~JobKind() = default;
  // Checks `payload` against `cluster` (every error names the field and changes nothing) and
  // returns the plan. Runs on the head's one thread: reading file headers is fine, loading is not.
  virtual absl::StatusOr<v1::JobPlan> Plan(const std::string& job_id, absl::string_view payload,
                                           const v1::ClusterState& cluster) const = 0;
  // What the kind offers front ends (Jobs.DescribeJobKind), serialized; runs on the head's one
  // thread like Plan. Empty: nothing to describe.
  virtual absl::StatusOr<std::string> Describe() const { return std::string(); }
};

using JobKinds = std::map<std::string, std::unique_ptr<JobKind>>;

}  // namespace raylight::head
