// The runtime on a GPU machine: raylight-node finds the GPUs through the CUDA runtime and starts
// one worker per GPU; workers report device memory (NVML); a group of GPU actors rendezvouses
// through the head and all-reduces over NCCL. Label `gpu`: runs on the GPU machine only.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "raylight/testing/v1/test_actor.pb.h"
#include "runtime/common/gpu_info.h"
#include "tests/util/cluster.h"
#include "tests/util/temp_dir.h"

namespace raylight {
namespace {

using namespace raylight::testing::v1;

TEST(GpuClusterTest, NodeFindsGpusAndAGpuGroupAllReducesOverNccl) {
  if (DiscoverGpus().empty()) GTEST_SKIP() << "needs a GPU; this machine has none";
  testing_util::TempDir dir("gpu-cluster");
  testing_util::ClusterOptions options;
  options.nodes = 1;
  options.cpu_workers_per_node = 0;
  options.gpu = true;
  testing_util::TestCluster cluster(RAYLIGHT_BIN_DIR, dir.path(), options);
  absl::Status started = cluster.Start();
  ASSERT_TRUE(started.ok()) << started;
  auto client = cluster.Connect();

  auto first = client->WaitCluster(1, 1, absl::Seconds(60));
  ASSERT_TRUE(first.ok()) << first.status() << cluster.Logs();
  ASSERT_EQ(first->nodes_size(), 1);
  const v1::NodeInfo& node = first->nodes(0);
  const int gpus = node.gpus_size();
  ASSERT_GE(gpus, 1) << "the GPU build found no GPU: " << node.DebugString();
  for (const auto& gpu : node.gpus()) {
    EXPECT_FALSE(gpu.name().empty());
    EXPECT_GT(gpu.total_memory_bytes(), int64_t{1} << 30) << gpu.DebugString();
  }
  auto state = client->WaitCluster(1, gpus, absl::Seconds(60));
  ASSERT_TRUE(state.ok()) << state.status() << cluster.Logs();
  ASSERT_EQ(state->workers_size(), gpus);
  for (const auto& worker : state->workers()) {
    EXPECT_EQ(worker.kind(), v1::WORKER_KIND_GPU);
    EXPECT_GE(worker.gpu_index(), 0);
  }

  const int ranks = std::min(gpus, 2);
  v1::GroupSpec spec;
  spec.set_name("nccl-sum");
  spec.set_size(ranks);
  spec.set_actor_class("TestActor");
  spec.mutable_resources()->set_gpu(1);
  spec.set_backend(v1::NCCL);
  auto group = client->CreateGroup(spec);
  ASSERT_TRUE(group.ok()) << group.status() << cluster.Logs();
  const v1::GroupInfo& info = (*group)->info();

  // Each rank its own random values, one call per rank at once (the all-reduce needs them all).
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-10, 10);
  constexpr int kValues = 1 << 16;
  std::vector<std::vector<float>> inputs(ranks, std::vector<float>(kValues));
  std::vector<double> expected(kValues, 0.0);
  for (int rank = 0; rank < ranks; ++rank) {
    for (int i = 0; i < kValues; ++i) {
      inputs[rank][i] = dist(rng);
      expected[i] += inputs[rank][i];
    }
  }
  std::vector<absl::StatusOr<AllReduceResponse>> results(ranks, absl::UnknownError("not run"));
  std::vector<std::unique_ptr<client::ActorHandle>> handles;
  for (int rank = 0; rank < ranks; ++rank) {
    handles.push_back(
        std::make_unique<client::ActorHandle>(*client, info.members(rank).actor_id()));
  }
  std::vector<std::thread> threads;
  for (int rank = 0; rank < ranks; ++rank) {
    threads.emplace_back([&, rank] {
      AllReduceRequest request;
      request.set_group_id(info.group_id());
      for (float v : inputs[rank]) request.add_values(v);
      results[rank] = handles[rank]->Call<AllReduceResponse>("all_reduce", request);
    });
  }
  for (auto& thread : threads) thread.join();
  for (int rank = 0; rank < ranks; ++rank) {
    ASSERT_TRUE(results[rank].ok()) << results[rank].status() << cluster.Logs();
    EXPECT_EQ(results[rank]->backend(), "nccl");
    ASSERT_EQ(results[rank]->values_size(), kValues);
    for (int i = 0; i < kValues; ++i) {
      ASSERT_NEAR(results[rank]->values(i), expected[i], 1e-4) << "rank " << rank << " at " << i;
    }
  }

  // The workers now hold a CUDA context and NCCL buffers: device memory in use is reported.
  bool reported = false;
  for (int attempt = 0; attempt < 50 && !reported; ++attempt) {
    auto now = client->ClusterState();
    ASSERT_TRUE(now.ok());
    reported = true;
    for (const auto& worker : now->workers()) {
      if (worker.actor_id().empty()) continue;
      reported &= worker.device_used_bytes() > 0 && worker.host_rss_bytes() > 0;
    }
    if (!reported) absl::SleepFor(absl::Milliseconds(100));  // next heartbeat, bounded above
  }
  EXPECT_TRUE(reported) << client->ClusterState()->DebugString();
}

}  // namespace
}  // namespace raylight
