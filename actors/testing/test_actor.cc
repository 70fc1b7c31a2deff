#include "actors/testing/test_actor.h"

#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"

namespace raylight::actors {

using namespace raylight::testing::v1;  // the test actor's messages

namespace {
// Bounds: a test actor never sleeps or allocates without limit on a caller's word.
constexpr int64_t kMaxSleepMillis = 10 * 60 * 1000;
constexpr int64_t kMaxPayloadBytes = int64_t{1} << 30;
constexpr int kMaxEvents = 100000;
constexpr std::chrono::seconds kRendezvousTimeout{60};
}  // namespace

TestActor::TestActor(worker::ActorEnvironment environment) : environment_(std::move(environment)) {
  Register("echo", &TestActor::Echo);
  Register("sleep", &TestActor::Sleep);
  Register("increment", &TestActor::Increment);
  Register("get_counter", &TestActor::GetCounter);
  Register("crash", &TestActor::Crash);
  Register("emit_events", &TestActor::EmitEvents);
  Register("all_reduce", &TestActor::AllReduce);
  Register("who_am_i", &TestActor::WhoAmI);
}

absl::Status TestActor::OnGroupJoined(const worker::GroupContext& group) {
  groups_[group.group_id] = Membership{group, nullptr};
  return absl::OkStatus();
}

void TestActor::OnGroupLeft(const worker::GroupContext& group) { groups_.erase(group.group_id); }

absl::StatusOr<EchoResponse> TestActor::Echo(const EchoRequest& request, worker::CallContext&) {
  EchoResponse response;
  response.set_payload(request.payload());
  return response;
}

absl::StatusOr<SleepResponse> TestActor::Sleep(const SleepRequest& request, worker::CallContext&) {
  if (request.millis() < 0 || request.millis() > kMaxSleepMillis) {
    return absl::InvalidArgumentError(
        absl::StrCat("millis: ", request.millis(), " is outside [0, ", kMaxSleepMillis, "]"));
  }
  // The point of this method is to occupy the actor (tests of ordering and shutdown).
  std::this_thread::sleep_for(std::chrono::milliseconds(request.millis()));
  return SleepResponse();
}

absl::StatusOr<CounterResponse> TestActor::Increment(const IncrementRequest& request,
                                                     worker::CallContext&) {
  counter_ += request.delta();
  history_.add_deltas(request.delta());
  history_.set_value(counter_);
  return history_;
}

absl::StatusOr<CounterResponse> TestActor::GetCounter(const GetCounterRequest&,
                                                      worker::CallContext&) {
  history_.set_value(counter_);
  return history_;
}

absl::StatusOr<CrashResponse> TestActor::Crash(const CrashRequest& request, worker::CallContext&) {
  if (request.exit_code() == 0) std::abort();
  _exit(request.exit_code());
}

absl::StatusOr<EmitEventsResponse> TestActor::EmitEvents(const EmitEventsRequest& request,
                                                         worker::CallContext& context) {
  if (request.count() < 0 || request.count() > kMaxEvents) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: ", request.count(), " is outside [0, ", kMaxEvents, "]"));
  }
  if (request.payload_bytes() < 0 || request.payload_bytes() > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrCat("payload_bytes: ", request.payload_bytes(),
                                                   " is outside [0, ", kMaxPayloadBytes, "]"));
  }
  for (int i = 0; i < request.count(); ++i) context.Emit(absl::StrCat("event ", i));
  EmitEventsResponse response;
  std::string* payload = response.mutable_payload();
  payload->resize(request.payload_bytes());
  for (int64_t i = 0; i < request.payload_bytes(); ++i) (*payload)[i] = static_cast<char>(i * 31);
  return response;
}

absl::StatusOr<AllReduceResponse> TestActor::AllReduce(const AllReduceRequest& request,
                                                       worker::CallContext& context) {
  std::string group_id = request.group_id();
  if (group_id.empty() && context.group() != nullptr) group_id = context.group()->group_id;
  auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("group_id: actor ", environment_.actor_id,
                                                      " is not in group '", group_id, "'"));
  }
  Membership& membership = it->second;
  if (membership.collective == nullptr) {
    auto collective = GroupCollective::Create(membership.group, environment_, kRendezvousTimeout);
    if (!collective.ok()) return collective.status();
    membership.collective = *std::move(collective);
  }
  std::vector<float> values(request.values().begin(), request.values().end());
  auto sum = membership.collective->AllReduceSum(std::move(values));
  if (!sum.ok()) return sum.status();
  AllReduceResponse response;
  for (float v : *sum) response.add_values(v);
  response.set_rank(membership.group.rank);
  response.set_size(membership.group.size);
  response.set_backend(membership.collective->backend());
  return response;
}

absl::StatusOr<WhoAmIResponse> TestActor::WhoAmI(const WhoAmIRequest&, worker::CallContext&) {
  WhoAmIResponse response;
  response.set_pid(getpid());
  response.set_worker_id(environment_.worker_id);
  response.set_actor_id(environment_.actor_id);
  response.set_gpu_index(environment_.gpu_index);
  return response;
}

void RegisterTestActor(worker::ActorRegistry& registry) {
  registry.Register(kTestActorClass,
                    [](const worker::ActorEnvironment& environment,
                       absl::string_view) -> absl::StatusOr<std::unique_ptr<worker::Actor>> {
                      return std::make_unique<TestActor>(environment);
                    });
}

}  // namespace raylight::actors
