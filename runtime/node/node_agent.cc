#include "runtime/node/node_agent.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "runtime/common/ids.h"
#include "runtime/common/log.h"
#include "runtime/rpc/channels.h"
#include "runtime/rpc/grpc_status.h"

namespace raylight::node {
namespace {

constexpr std::chrono::seconds kHeadRpcTimeout{5};

// Runs one asynchronous head RPC; `done` runs on the io thread.
template <typename Request, typename Response, typename Start>
void CallHead(boost::asio::io_context& io, const rpc::ClusterToken& token, Request request,
              Start start, std::function<void(absl::Status, const Response&)> done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  call->context.set_deadline(std::chrono::system_clock::now() + kHeadRpcTimeout);
  token.Attach(call->context);
  start(&call->context, &call->request, &call->response,
        [&io, call, done = std::move(done)](grpc::Status status) {
          boost::asio::post(
              io, [call, done, status]() { done(rpc::FromGrpc(status), call->response); });
        });
}

}  // namespace

NodeAgent::NodeAgent(NodeConfig config, rpc::ClusterToken token, boost::asio::io_context& io)
    : config_(std::move(config)),
      token_(std::move(token)),
      io_(io),
      head_(v1::Head::NewStub(rpc::MakeChannel(config_.head_address))),
      heartbeat_timer_(io) {}

NodeAgent::~NodeAgent() = default;

std::string NodeAgent::WorkerId(const Slot& slot) const {
  return absl::StrCat(config_.node_id, "/w", slot.index);
}

absl::Status NodeAgent::Start() {
  std::error_code error;
  std::filesystem::create_directories(config_.state_dir + "/logs", error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir: cannot create ", config_.state_dir, "/logs: ", error.message()));
  }
  if (access(config_.worker_binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("worker_binary: ", config_.worker_binary, " is not an executable"));
  }
  if (!config_.no_gpu) gpus_ = DiscoverGpus();
  int cpu_workers = config_.num_cpu_workers;
  if (cpu_workers < 0) cpu_workers = gpus_.empty() ? 2 : 0;
  int index = 0;
  for (const GpuDevice& gpu : gpus_) {
    auto slot = std::make_unique<Slot>();
    slot->index = index++;
    slot->gpu_index = gpu.index;
    slots_.push_back(std::move(slot));
  }
  for (int i = 0; i < cpu_workers; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->index = index++;
    slots_.push_back(std::move(slot));
  }
  RL_LOG(INFO) << "node " << config_.node_id << ": " << gpus_.size() << " GPUs, " << cpu_workers
               << " CPU workers, head " << config_.head_address;
  for (auto& slot : slots_) {
    slot->backoff = config_.restart_backoff;
    slot->restart_timer = std::make_unique<boost::asio::steady_timer>(io_);
    SpawnWorker(*slot);
  }
  Register();
  ArmHeartbeat();
  return absl::OkStatus();
}

void NodeAgent::SpawnWorker(Slot& slot) {
  if (stopping_) return;
  slot.instance_id = RandomId("");
  std::vector<std::string> argv = {
      config_.worker_binary,
      absl::StrCat("--head=", config_.head_address),
      absl::StrCat("--node-id=", config_.node_id),
      absl::StrCat("--slot=", slot.index),
      absl::StrCat("--gpu=", slot.gpu_index),
      absl::StrCat("--host=", config_.host),
      absl::StrCat("--instance-id=", slot.instance_id),
      absl::StrCat("--parent-pid=", getpid()),
      absl::StrCat("--state-dir=", config_.state_dir),
  };
  for (const std::string& root : config_.model_roots) argv.push_back("--model-root=" + root);
  SpawnOptions options;
  options.log_path = absl::StrCat(config_.state_dir, "/logs/worker-", slot.index, ".log");
  // Tokens travel in the environment, not on the command line (ps would show them).
  rpc::PassSecurityFlags(config_.security, argv, options.env);
  auto child = ChildProcess::Spawn(argv, options);
  if (!child.ok()) {
    RL_LOG(ERROR) << "cannot start worker " << slot.index << ": " << child.status();
    OnWorkerExit(slot);
    return;
  }
  slot.process = std::make_unique<ChildProcess>(*std::move(child));
  slot.started = absl::Now();
  RL_LOG(INFO) << "started worker " << WorkerId(slot) << " (pid " << slot.process->pid() << ", gpu "
               << slot.gpu_index << ")";
  // The pidfd becomes readable when the child exits.
  slot.exit_watch =
      std::make_unique<boost::asio::posix::stream_descriptor>(io_, dup(slot.process->pidfd()));
  slot.exit_watch->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                              [this, &slot](const boost::system::error_code& error) {
                                if (error == boost::asio::error::operation_aborted) return;
                                OnWorkerExit(slot);
                              });
}

void NodeAgent::OnWorkerExit(Slot& slot) {
  std::string reason = "could not be started";
  if (slot.process != nullptr) {
    auto code = slot.process->Wait(std::chrono::milliseconds(1000));
    reason = code.ok() ? absl::StrCat("process exited with ", DescribeExit(*code))
                       : std::string(code.status().message());
    RL_LOG(WARNING) << "worker " << WorkerId(slot) << " (pid " << slot.process->pid() << ") "
                    << reason;
    ReportExit(slot, reason);
    slot.process.reset();
  }
  slot.exit_watch.reset();
  if (stopping_) return;
  if (absl::Now() - slot.started > config_.stable_after) slot.backoff = config_.restart_backoff;
  const absl::Duration delay = slot.backoff;
  slot.backoff = std::min(slot.backoff * 2, config_.max_restart_backoff);
  slot.restart_timer->expires_after(absl::ToChronoNanoseconds(delay));
  slot.restart_timer->async_wait([this, &slot](const boost::system::error_code& error) {
    if (error == boost::asio::error::operation_aborted) return;
    SpawnWorker(slot);
  });
}

void NodeAgent::ReportExit(const Slot& slot, const std::string& reason) {
  v1::ReportWorkerExitRequest request;
  request.set_node_id(config_.node_id);
  request.set_worker_id(WorkerId(slot));
  request.set_instance_id(slot.instance_id);
  request.set_reason(reason);
  CallHead<v1::ReportWorkerExitRequest, v1::ReportWorkerExitResponse>(
      io_, token_, std::move(request),
      [this](auto* context, auto* req, auto* resp, auto callback) {
        head_->async()->ReportWorkerExit(context, req, resp, std::move(callback));
      },
      [](absl::Status status, const v1::ReportWorkerExitResponse&) {
        // The heartbeat deadline catches the exit if this report is lost.
        if (!status.ok()) RL_LOG(WARNING) << "could not report a worker exit: " << status;
      });
}

void NodeAgent::Register() {
  if (registering_ || stopping_) return;
  registering_ = true;
  v1::RegisterNodeRequest request;
  v1::NodeInfo* info = request.mutable_node();
  info->set_node_id(config_.node_id);
  info->set_host(config_.host);
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  info->set_hostname(hostname);
  info->set_pid(getpid());
  for (const GpuDevice& gpu : gpus_) {
    v1::GpuInfo* entry = info->add_gpus();
    entry->set_index(gpu.index);
    entry->set_name(gpu.name);
    entry->set_total_memory_bytes(gpu.total_memory_bytes);
  }
  int cpu_slots = 0;
  for (const auto& slot : slots_) cpu_slots += slot->gpu_index < 0 ? 1 : 0;
  info->set_cpu_slots(cpu_slots);
  CallHead<v1::RegisterNodeRequest, v1::RegisterNodeResponse>(
      io_, token_, std::move(request),
      [this](auto* context, auto* req, auto* resp, auto callback) {
        head_->async()->RegisterNode(context, req, resp, std::move(callback));
      },
      [this](absl::Status status, const v1::RegisterNodeResponse& response) {
        registering_ = false;
        if (!status.ok()) {
          if (!reported_outage_) RL_LOG(WARNING) << "cannot register with the head: " << status;
          reported_outage_ = true;
          return;  // the next heartbeat tick tries again
        }
        reported_outage_ = false;
        registered_ = true;
        heartbeat_period_ =
            absl::Milliseconds(std::max<int64_t>(response.heartbeat_period_ms(), 50));
        RL_LOG(INFO) << "registered with the head at " << config_.head_address;
      });
}

void NodeAgent::ArmHeartbeat() {
  heartbeat_timer_.expires_after(absl::ToChronoNanoseconds(heartbeat_period_));
  heartbeat_timer_.async_wait([this](const boost::system::error_code& error) {
    if (error == boost::asio::error::operation_aborted || stopping_) return;
    Heartbeat();
    ArmHeartbeat();
  });
}

void NodeAgent::Heartbeat() {
  if (!registered_) {
    Register();
    return;
  }
  v1::NodeHeartbeatRequest request;
  request.set_node_id(config_.node_id);
  CallHead<v1::NodeHeartbeatRequest, v1::HeartbeatResponse>(
      io_, token_, std::move(request),
      [this](auto* context, auto* req, auto* resp, auto callback) {
        head_->async()->NodeHeartbeat(context, req, resp, std::move(callback));
      },
      [this](absl::Status status, const v1::HeartbeatResponse& response) {
        if (!status.ok()) {
          if (!reported_outage_) RL_LOG(WARNING) << "heartbeat failed: " << status;
          reported_outage_ = true;
          return;
        }
        if (reported_outage_) RL_LOG(INFO) << "the head answers again";
        reported_outage_ = false;
        if (!response.known()) {
          RL_LOG(INFO) << "the head does not know this node (it restarted): registering again";
          registered_ = false;
          Register();
        }
      });
}

void NodeAgent::Shutdown(absl::Duration grace, std::function<void()> done) {
  stopping_ = true;
  heartbeat_timer_.cancel();
  int running = 0;
  for (auto& slot : slots_) {
    slot->restart_timer->cancel();
    if (slot->process != nullptr) {
      slot->process->Signal(SIGTERM);
      ++running;
    }
  }
  RL_LOG(INFO) << "stopping " << running << " workers";
  // Exits are reaped by OnWorkerExit (stopping_: no restart); after the grace period the rest
  // are killed.
  auto timer = std::make_shared<boost::asio::steady_timer>(io_);
  auto poll = std::make_shared<std::function<void()>>();
  const absl::Time deadline = absl::Now() + grace;
  *poll = [this, timer, poll, deadline, done]() {
    bool any = false;
    for (auto& slot : slots_) any |= slot->process != nullptr;
    if (!any || absl::Now() >= deadline) {
      for (auto& slot : slots_) {
        if (slot->process != nullptr) slot->process->Kill();
      }
      done();
      return;
    }
    timer->expires_after(std::chrono::milliseconds(20));
    timer->async_wait([poll](const boost::system::error_code&) { (*poll)(); });
  };
  (*poll)();
}

}  // namespace raylight::node
