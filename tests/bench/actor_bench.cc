// Ray's actor microbenchmarks, same names and patterns (ray/_private/ray_perf.py), on a real
// local cluster: raylight-head + one raylight-node with two CPU workers, the test actor's `echo`
// of an empty payload standing in for Ray's `small_value`. Prints one JSON line per metric
// (calls or groups per second). The anchor (Ray itself) is tests/bench/ray_actor_anchor.py.
#include <atomic>
#include <iostream>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "raylight/testing/v1/test_actor.pb.h"
#include "tests/util/cluster.h"
#include "tests/util/temp_dir.h"

namespace raylight {
namespace {

using client::ActorHandle;
using client::Client;

constexpr int kAsyncBatch = 1000;  // ray_perf: 1000 calls in flight, then wait

v1::ActorSpec Spec() {
  v1::ActorSpec spec;
  spec.set_class_name("TestActor");
  spec.mutable_resources()->set_cpu(1);
  return spec;
}

// Runs `round` (which does `per_round` operations) repeatedly for about `duration`; ops/s.
template <typename Round>
double Rate(Round round, int per_round, absl::Duration duration) {
  round();  // warm-up
  int64_t ops = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < duration) {
    round();
    ops += per_round;
  }
  return ops / absl::ToDoubleSeconds(absl::Now() - start);
}

// `calls` asynchronous calls spread over `actors`, then wait for all.
void AsyncBatch(const std::vector<ActorHandle*>& actors, int calls_per_actor) {
  const std::string args = testing::v1::EchoRequest().SerializeAsString();
  std::atomic<int> left{static_cast<int>(actors.size()) * calls_per_actor};
  absl::Notification done;
  for (int i = 0; i < calls_per_actor; ++i) {
    for (ActorHandle* actor : actors) {
      actor->CallAsync("echo", args, [&](absl::StatusOr<std::string> result) {
        if (!result.ok()) {
          std::cerr << result.status() << "\n";
          std::abort();
        }
        if (--left == 0) done.Notify();
      });
    }
  }
  done.WaitForNotification();
}

// Rows whose name contains this run (all when empty): `actor_bench 3 placement` profiles one.
std::string row_filter;

bool Wanted(const std::string& name) { return name.find(row_filter) != std::string::npos; }

void Emit(const std::string& name, double value) {
  std::cout << absl::StrFormat("{\"name\": \"%s\", \"value\": %.1f, \"unit\": \"per_s\"}\n", name,
                               value)
            << std::flush;
}

int Run(absl::Duration duration) {
  testing_util::TempDir dir("actor-bench");
  testing_util::ClusterOptions options;
  options.nodes = 1;
  options.cpu_workers_per_node = 2;
  options.heartbeat_ms = 1000;
  options.deadline_ms = 5000;
  testing_util::TestCluster cluster(RAYLIGHT_BIN_DIR, dir.path(), options);
  if (auto status = cluster.Start(); !status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  auto client = cluster.Connect();
  auto a = client->CreateActor(Spec());
  auto b = client->CreateActor(Spec());
  if (!a.ok() || !b.ok()) {
    std::cerr << "cannot create actors\n";
    return 1;
  }
  (void)(*a)->Resolve();
  (void)(*b)->Resolve();
  const std::string args = testing::v1::EchoRequest().SerializeAsString();

  if (Wanted("1_1_actor_calls_sync"))
    Emit("1_1_actor_calls_sync", Rate([&] { (void)(*a)->Call("echo", args); }, 1, duration));
  if (Wanted("1_1_actor_calls_async"))
    Emit("1_1_actor_calls_async",
         Rate([&] { AsyncBatch({a->get()}, kAsyncBatch); }, kAsyncBatch, duration));
  if (Wanted("1_n_actor_calls_async"))
    Emit("1_n_actor_calls_async", Rate(
                                      [&] {
                                        AsyncBatch({a->get(), b->get()}, kAsyncBatch);
                                      },
                                      2 * kAsyncBatch, duration));
  if (Wanted("n_n_actor_calls_async")) {
    // n clients (own connections, own handles), each driving all n actors.
    constexpr int kClients = 2;
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<std::vector<std::unique_ptr<ActorHandle>>> handles(kClients);
    for (int c = 0; c < kClients; ++c) {
      client::ClientOptions client_options = client->options();
      client_options.dedicated_channels = true;
      clients.push_back(*Client::Connect(client_options));
      for (const auto* actor : {a->get(), b->get()}) {
        handles[c].push_back(std::make_unique<ActorHandle>(*clients[c], actor->actor_id()));
        (void)handles[c].back()->Resolve();
      }
    }
    auto round = [&] {
      std::vector<std::thread> threads;
      for (int c = 0; c < kClients; ++c) {
        threads.emplace_back([&, c] {
          AsyncBatch({handles[c][0].get(), handles[c][1].get()}, kAsyncBatch);
        });
      }
      for (auto& thread : threads) thread.join();
    };
    Emit("n_n_actor_calls_async", Rate(round, kClients * 2 * kAsyncBatch, duration));
  }
  // Free the workers for groups.
  (void)client->KillActor((*a)->actor_id(), true);
  (void)client->KillActor((*b)->actor_id(), true);
  int counter = 0;
  if (Wanted("placement_group_create_removal"))
    Emit("placement_group_create_removal",
         Rate(
             [&] {
               v1::GroupSpec spec;
               spec.set_name(absl::StrCat("pg-", counter++));
               spec.set_size(1);
               spec.set_actor_class("TestActor");
               spec.mutable_resources()->set_cpu(1);
               auto group = client->CreateGroup(spec);
               if (!group.ok() || !client->RemoveGroup(spec.name()).ok()) {
                 std::cerr << "group create/remove failed: " << group.status() << "\n";
                 std::abort();
               }
             },
             1, duration));
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  if (argc > 2) raylight::row_filter = argv[2];
  return raylight::Run(absl::Seconds(seconds));
}
