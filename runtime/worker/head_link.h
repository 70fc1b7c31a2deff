// HeadLink: the worker's registration with the head and its heartbeats, on a thread of its own.
// Registers (retrying while the head is away), heartbeats every period the head asked for, and
// registers again — with what it hosts — when the head answers that it does not know it (a head
// restart): the cluster heals without restarting the worker.
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "raylight/v1/head.grpc.pb.h"
#include "runtime/rpc/auth.h"
#include "runtime/worker/worker_runtime.h"

namespace raylight::worker {

class HeadLink {
 public:
  // `runtime` must outlive the link. `info` describes the worker (called on the link's thread).
  HeadLink(std::shared_ptr<grpc::Channel> head, rpc::ClusterToken token,
           std::function<v1::WorkerInfo()> info, WorkerRuntime& runtime);
  ~HeadLink();  // Stop()s
  HeadLink(const HeadLink&) = delete;
  HeadLink& operator=(const HeadLink&) = delete;

  void Start();
  void Stop();

 private:
  void Loop();
  absl::Status Register();
  // OK(known) or the RPC error.
  absl::StatusOr<bool> Heartbeat();
  // Waits `duration` or until Stop(); false when stopping.
  bool WaitFor(absl::Duration duration);

  std::unique_ptr<v1::Head::Stub> stub_;
  const rpc::ClusterToken token_;
  std::function<v1::WorkerInfo()> info_;
  WorkerRuntime& runtime_;
  absl::Duration period_ = absl::Seconds(1);

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace raylight::worker
