// TestActor: the runtime's test and benchmark actor, and the worked example of an actor class.
//
// Writing an actor: derive from worker::MethodTable<YourActor>, register typed methods (protobuf
// request -> StatusOr<protobuf response>) in the constructor, and register the class by name in
// the worker binary's main (actors/worker_main.cc). Its methods run one at a time in the order
// each caller submitted them. Group state arrives through OnGroupJoined / OnGroupLeft.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "actors/testing/group_collective.h"
#include "raylight/testing/v1/test_actor.pb.h"
#include "runtime/worker/actor_class.h"
#include "runtime/worker/actor_registry.h"

namespace raylight::actors {

inline constexpr char kTestActorClass[] = "TestActor";

class TestActor final : public worker::MethodTable<TestActor> {
 public:
  explicit TestActor(worker::ActorEnvironment environment);

  absl::Status OnGroupJoined(const worker::GroupContext& group) override;
  void OnGroupLeft(const worker::GroupContext& group) override;

  absl::StatusOr<testing::v1::EchoResponse> Echo(const testing::v1::EchoRequest& request,
                                                 worker::CallContext& context);
  absl::StatusOr<testing::v1::SleepResponse> Sleep(const testing::v1::SleepRequest& request,
                                                   worker::CallContext& context);
  absl::StatusOr<testing::v1::CounterResponse> Increment(
      const testing::v1::IncrementRequest& request, worker::CallContext& context);
  absl::StatusOr<testing::v1::CounterResponse> GetCounter(
      const testing::v1::GetCounterRequest& request, worker::CallContext& context);
  absl::StatusOr<testing::v1::CrashResponse> Crash(const testing::v1::CrashRequest& request,
                                                   worker::CallContext& context);
  absl::StatusOr<testing::v1::EmitEventsResponse> EmitEvents(
      const testing::v1::EmitEventsRequest& request, worker::CallContext& context);
  absl::StatusOr<testing::v1::AllReduceResponse> AllReduce(
      const testing::v1::AllReduceRequest& request, worker::CallContext& context);
  absl::StatusOr<testing::v1::WhoAmIResponse> WhoAmI(const testing::v1::WhoAmIRequest& request,
                                                     worker::CallContext& context);

 private:
  struct Membership {
    worker::GroupContext group;
    std::unique_ptr<GroupCollective> collective;  // created at first use, reused after
  };

  const worker::ActorEnvironment environment_;
  int64_t counter_ = 0;
  testing::v1::CounterResponse history_;
  std::map<std::string, Membership> groups_;
};

void RegisterTestActor(worker::ActorRegistry& registry);

}  // namespace raylight::actors
