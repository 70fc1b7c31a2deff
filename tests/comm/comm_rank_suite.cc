// One rank of the multi-process Communicator suite. comm_multiprocess_test starts `--size` of
// these as separate processes; they rendezvous through a FileStore and each checks every
// operation against a reference it computes itself: every rank can regenerate every other
// rank's random input from the shared seed.
//
// Scenarios: "suite" runs the gtest cases below; "never_arrive" and "peer_dies" check that a
// missing or dead rank ends in an error within the timeout.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "models/parallel/comm/communicator.h"
#include "models/parallel/comm/gloo_communicator.h"
#include "models/parallel/comm/nccl_communicator.h"
#include "runtime/common/file_store.h"

ABSL_FLAG(std::string, backend, "gloo", "gloo or nccl");
ABSL_FLAG(int, rank, 0, "this process's rank");
ABSL_FLAG(int, size, 2, "number of ranks");
ABSL_FLAG(std::string, store_dir, "", "FileStore directory shared by the ranks");
ABSL_FLAG(uint64_t, seed, 1, "seed of every random input (fresh per test run)");
ABSL_FLAG(int, timeout_ms, 60000, "communicator timeout");
ABSL_FLAG(std::string, scenario, "suite",
          "suite | never_arrive | peer_dies | abort_waiting | abort_rendezvous");

namespace raylight::comm {
namespace {

using std::chrono::milliseconds;

std::unique_ptr<Store> g_store;
std::unique_ptr<Communicator> g_comm;

absl::StatusOr<std::unique_ptr<Communicator>> MakeCommunicator(
    const std::string& group, std::shared_ptr<AbortSignal> abort_signal = nullptr) {
  const int rank = absl::GetFlag(FLAGS_rank);
  const int size = absl::GetFlag(FLAGS_size);
  const milliseconds timeout(absl::GetFlag(FLAGS_timeout_ms));
  if (absl::GetFlag(FLAGS_backend) == "nccl") {
    NcclOptions options;
    options.timeout = timeout;
    options.group_name = group;
    options.abort_signal = std::move(abort_signal);
    return CreateNcclCommunicator(*g_store, rank, size, /*device_index=*/rank, options);
  }
  GlooOptions options;
  options.timeout = timeout;
  options.hostname = "127.0.0.1";
  options.group_name = group;
  options.abort_signal = std::move(abort_signal);
  return CreateGlooCommunicator(*g_store, rank, size, options);
}

Communicator& Comm() { return *g_comm; }
int Rank() { return Comm().rank(); }
int Size() { return Comm().size(); }

const std::vector<at::ScalarType> kAllDtypes = {
    at::kFloat, at::kHalf, at::kBFloat16, at::kFloat8_e4m3fn, at::kInt, at::kLong, at::kByte};

bool IsFloating(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16 || t == at::kFloat8_e4m3fn;
}

// The input of `rank` for check `tag`: random, reproducible on every rank, on the CPU.
at::Tensor InputOf(absl::string_view tag, int rank, at::IntArrayRef shape, at::ScalarType dtype) {
  const uint64_t seed = absl::GetFlag(FLAGS_seed) ^
                        (std::hash<std::string>{}(std::string(tag)) * 31 + rank * 1000003ULL);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  if (IsFloating(dtype)) return (at::randn(shape, gen, at::kFloat) * 3).to(dtype);
  if (dtype == at::kByte) return at::randint(0, 256, shape, gen, at::kLong).to(dtype);
  return at::randint(-1000, 1000, shape, gen, at::kLong).to(dtype);
}

at::Tensor OnDevice(const at::Tensor& t) { return t.to(Comm().device()); }

std::string Describe(absl::string_view tag, at::ScalarType dtype) {
  return absl::StrCat(tag, " dtype=", c10::toString(dtype), " rank=", Rank(), "/", Size(),
                      " seed=", absl::GetFlag(FLAGS_seed));
}

// Bit-exact comparison (data movement must not change a single bit).
void ExpectBitEqual(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  at::Tensor g = got.cpu().contiguous().reshape({-1}).view(at::kByte);
  at::Tensor w = want.contiguous().reshape({-1}).view(at::kByte);
  EXPECT_TRUE(at::equal(g, w)) << what;
}

// The reduction of every rank's input, computed here in float64 (or int64).
at::Tensor Reference(absl::string_view tag, at::IntArrayRef shape, at::ScalarType dtype,
                     ReduceOp op) {
  const at::ScalarType wide = IsFloating(dtype) ? at::kDouble : at::kLong;
  at::Tensor acc = InputOf(tag, 0, shape, dtype).to(wide);
  for (int r = 1; r < Size(); ++r) {
    at::Tensor x = InputOf(tag, r, shape, dtype).to(wide);
    acc = op == ReduceOp::kSum   ? acc + x
          : op == ReduceOp::kMax ? at::maximum(acc, x)
                                 : at::minimum(acc, x);
  }
  return acc;
}

void ExpectReduced(const at::Tensor& got, const at::Tensor& reference, at::ScalarType dtype,
                   ReduceOp op, const std::string& what) {
  ASSERT_EQ(got.scalar_type(), dtype) << what;
  ASSERT_EQ(got.sizes(), reference.sizes()) << what;
  at::Tensor g = got.cpu();
  if (op != ReduceOp::kSum || dtype == at::kInt || dtype == at::kLong) {
    // max/min pick an input exactly; integer sums are exact. (Compared widened: at::equal
    // does not cover fp8.)
    const at::ScalarType wide = reference.scalar_type();
    EXPECT_TRUE(at::equal(g.to(wide), reference.to(dtype).to(wide))) << what;
    return;
  }
  if (dtype == at::kByte) {  // uint8 sums wrap around, as in NCCL and Gloo
    EXPECT_TRUE(at::equal(g, reference.remainder(256).to(dtype))) << what;
    return;
  }
  // Tolerances: the reduction's rounding in the dtype, a few ulps at the magnitude of the sums.
  double rtol = 1e-6, atol = 1e-5;
  if (dtype == at::kHalf) rtol = 4e-3, atol = 2e-2;
  if (dtype == at::kBFloat16) rtol = 3e-2, atol = 1.5e-1;
  if (dtype == at::kFloat8_e4m3fn) rtol = 1.3e-1, atol = 2e-2;  // summed in f32, rounded once
  at::Tensor diff = (g.to(at::kDouble) - reference).abs();
  at::Tensor bound = reference.abs() * rtol + atol;
  EXPECT_TRUE(diff.le(bound).all().item<bool>())
      << what << " max abs diff " << diff.max().item<double>();
}

TEST(Communicator, Identity) {
  EXPECT_EQ(Rank(), absl::GetFlag(FLAGS_rank));
  EXPECT_EQ(Size(), absl::GetFlag(FLAGS_size));
  EXPECT_EQ(Comm().backend_name(), absl::GetFlag(FLAGS_backend));
}

TEST(Communicator, AllToAllMovesEveryDtypeBitExactly) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t scatter, gather;
  };
  const int64_t p = Size();
  // Odd extents everywhere else, so that a stride or offset slip shows.
  const std::vector<Case> cases = {
      {{3 * p, 5}, 0, 0},        // plain all-to-all
      {{2, 3 * p, 5, 7}, 1, 2},  // scatter one axis, gather another
      {{1, 7, 2 * p, 3}, 2, 1},  // Ulysses' shape: [B, S/P, H, D] -> [B, S, H/P, D]
      {{5, 3, p}, -1, 0},        // negative dims
  };
  for (at::ScalarType dtype : kAllDtypes) {
    for (size_t c = 0; c < cases.size(); ++c) {
      const Case& k = cases[c];
      const std::string tag = absl::StrCat("a2a", c);
      auto got =
          Comm().AllToAll(OnDevice(InputOf(tag, Rank(), k.shape, dtype)), k.scatter, k.gather);
      ASSERT_TRUE(got.ok()) << got.status() << " " << Describe(tag, dtype);
      // Reference: chunk Rank() of every rank's input, concatenated along gather.
      std::vector<at::Tensor> parts;
      for (int r = 0; r < Size(); ++r) {
        parts.push_back(InputOf(tag, r, k.shape, dtype).chunk(Size(), k.scatter)[Rank()]);
      }
      const int64_t gather = k.gather < 0 ? k.gather + k.shape.size() : k.gather;
      // at::cat does not take fp8 on every build: concatenate bytes-equivalent int8 views.
      std::vector<at::Tensor> raw;
      for (auto& part : parts) raw.push_back(part.contiguous().view(at::kChar));
      ExpectBitEqual(*got, at::cat(raw, gather).view(dtype), Describe(tag, dtype));
    }
  }
}

TEST(Communicator, AllGatherEveryDtypeAlongAnyDim) {
  for (at::ScalarType dtype : kAllDtypes) {
    for (int64_t dim : {0, 1, 2}) {
      const std::string tag = absl::StrCat("gather", dim);
      const std::vector<int64_t> shape = {3, 5, 7};
      auto got = Comm().AllGather(OnDevice(InputOf(tag, Rank(), shape, dtype)), dim);
      ASSERT_TRUE(got.ok()) << got.status() << " " << Describe(tag, dtype);
      std::vector<at::Tensor> raw;
      for (int r = 0; r < Size(); ++r) raw.push_back(InputOf(tag, r, shape, dtype).view(at::kChar));
      ExpectBitEqual(*got, at::cat(raw, dim).view(dtype), Describe(tag, dtype));
    }
  }
}

// Into a caller's buffer (FSDP's fixed gather pool): the same bytes as AllGather along dim 0,
// written into the buffer itself, not a new tensor.
TEST(Communicator, AllGatherIntoWritesTheCallersBuffer) {
  for (at::ScalarType dtype : kAllDtypes) {
    const std::vector<int64_t> shape = {3, 5};
    at::Tensor out = OnDevice(at::empty({Size() * 3, 5}, at::TensorOptions().dtype(dtype)));
    void* const before = out.data_ptr();
    ASSERT_TRUE(Comm().AllGatherInto(OnDevice(InputOf("into", Rank(), shape, dtype)), out).ok());
    ASSERT_TRUE(Comm().Synchronize().ok());
    EXPECT_EQ(out.data_ptr(), before);
    std::vector<at::Tensor> raw;
    for (int r = 0; r < Size(); ++r)
      raw.push_back(InputOf("into", r, shape, dtype).view(at::kChar));
    ExpectBitEqual(out, at::cat(raw, 0).view(dtype), Describe("into", dtype));
  }
  // A buffer of the wrong size is refused, naming both sizes.
  at::Tensor small = OnDevice(at::empty({Size() * 2}, at::kFloat));
  auto refused = Comm().AllGatherInto(OnDevice(at::ones({3})), small);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("output has"), absl::string_view::npos) << refused;
}

// The exchange on packed buffers (Ulysses' overlapped path): chunk j of every rank's input lands
// as chunk `rank` of rank j's output, in the caller's buffer.
TEST(Communicator, AllToAllIntoExchangesPackedChunks) {
  for (at::ScalarType dtype : kAllDtypes) {
    const std::vector<int64_t> shape = {Size(), 4, 3};
    at::Tensor out = OnDevice(at::empty(shape, at::TensorOptions().dtype(dtype)));
    void* const before = out.data_ptr();
    ASSERT_TRUE(Comm().AllToAllInto(OnDevice(InputOf("a2ainto", Rank(), shape, dtype)), out).ok());
    ASSERT_TRUE(Comm().Synchronize().ok());
    EXPECT_EQ(out.data_ptr(), before);
    std::vector<at::Tensor> raw;
    for (int r = 0; r < Size(); ++r) {
      raw.push_back(InputOf("a2ainto", r, shape, dtype)[Rank()].unsqueeze(0).view(at::kChar));
    }
    ExpectBitEqual(out, at::cat(raw, 0).view(dtype), Describe("a2ainto", dtype));
  }
  // Mismatched shapes and a first dimension the group does not divide are refused.
  at::Tensor other = OnDevice(at::empty({Size(), 5}, at::kFloat));
  auto refused = Comm().AllToAllInto(OnDevice(at::ones({Size(), 4})), other);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("shape"), absl::string_view::npos) << refused;
  if (Size() > 1) {
    at::Tensor odd = OnDevice(at::empty({Size() + 1}, at::kFloat));
    refused = Comm().AllToAllInto(OnDevice(at::ones({Size() + 1})), odd);
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  }
}

// The same exchange inside the communicator's workspace (on NCCL a symmetric window, where the
// copy engines move it), at an offset, repeated into a grown workspace.
TEST(Communicator, AllToAllIntoTheWorkspace) {
  for (int64_t elements : {int64_t{4096}, int64_t{3} << 20}) {
    const int64_t bytes = Size() * elements * 2;  // bf16
    auto workspace = Comm().Workspace(3 * bytes);
    ASSERT_TRUE(workspace.ok()) << workspace.status();
    ASSERT_GE(workspace->numel(), 3 * bytes);
    at::Tensor sent = workspace->narrow(0, bytes, bytes).view(at::kBFloat16).view({Size(), -1});
    at::Tensor received =
        workspace->narrow(0, 2 * bytes, bytes).view(at::kBFloat16).view({Size(), -1});
    const std::vector<int64_t> shape = {Size(), elements};
    sent.copy_(OnDevice(InputOf("workspace", Rank(), shape, at::kBFloat16)));
    ASSERT_TRUE(Comm().AllToAllInto(sent, received).ok());
    ASSERT_TRUE(Comm().Synchronize().ok());
    std::vector<at::Tensor> raw;
    for (int r = 0; r < Size(); ++r) {
      raw.push_back(
          InputOf("workspace", r, shape, at::kBFloat16)[Rank()].unsqueeze(0).view(at::kChar));
    }
    ExpectBitEqual(received, at::cat(raw, 0).view(at::kBFloat16), "workspace");
  }
  EXPECT_EQ(Comm().Workspace(0).status().code(), absl::StatusCode::kInvalidArgument);
}

// One-sided puts into the peers' workspaces (on NCCL: mapped memory, copy-engine copies): every
// rank puts the column block a peer owns, read from strided rows, into that peer's buffer at this
// rank's columns; two rounds per size (the fences' sequence carries over), then a grown one.
TEST(Communicator, PutsLandInThePeersWorkspaces) {
  for (int64_t rows : {int64_t{3}, int64_t{2049}}) {
    const int64_t cols = 96;
    const int64_t bytes = rows * Size() * cols * 4 + 512;  // fp32, at an offset of 512
    auto workspace = Comm().PeerWorkspace(bytes);
    if (workspace.status().code() == absl::StatusCode::kUnimplemented) {
      // Only NCCL may lack it (GPUs without peer access); Gloo always carries puts.
      ASSERT_EQ(Comm().backend_name(), "nccl") << workspace.status();
      GTEST_SKIP() << workspace.status();
    }
    ASSERT_TRUE(workspace.ok()) << workspace.status();
    ASSERT_GE(workspace->numel(), bytes);
    at::Tensor buffer =
        workspace->narrow(0, 512, bytes - 512).view(at::kFloat).view({rows, Size() * cols});
    const at::Tensor mine = buffer.narrow(1, Rank() * cols, cols);  // rows of a wider buffer
    for (int round = 0; round < 2; ++round) {
      const std::string tag = absl::StrCat("puts", rows, "/", round);
      const std::vector<int64_t> shape = {rows, Size(), cols};
      const at::Tensor input = OnDevice(InputOf(tag, Rank(), shape, at::kFloat));
      mine.copy_(input.select(1, Rank()));
      ASSERT_TRUE(Comm().PeerFence().ok());
      for (int peer = 0; peer < Size(); ++peer) {
        if (peer == Rank()) continue;
        ASSERT_TRUE(Comm().PutToPeer(input.select(1, peer), mine, peer).ok());
      }
      ASSERT_TRUE(Comm().PeerFence().ok());
      ASSERT_TRUE(Comm().Synchronize().ok());
      std::vector<at::Tensor> want;
      for (int r = 0; r < Size(); ++r)
        want.push_back(InputOf(tag, r, shape, at::kFloat).select(1, Rank()));
      ExpectBitEqual(buffer, at::cat(want, 1), Describe(tag, at::kFloat));
    }
  }
  // Bad puts are refused and leave the communicator usable.
  auto workspace = Comm().PeerWorkspace(4096);
  ASSERT_TRUE(workspace.ok()) << workspace.status();
  const at::Tensor target = workspace->narrow(0, 0, 64).view(at::kFloat);
  const at::Tensor source = OnDevice(at::ones({16}));
  const int other = (Rank() + 1) % Size();
  EXPECT_EQ(Comm().PutToPeer(source, target, Rank()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Comm().PutToPeer(source, OnDevice(at::zeros({16})), other).code(),
            absl::StatusCode::kInvalidArgument);  // not a view of the workspace
  EXPECT_EQ(Comm().PutToPeer(source.narrow(0, 0, 8), target, other).code(),
            absl::StatusCode::kInvalidArgument);  // shapes differ
  EXPECT_EQ(Comm().PutToPeer(source, target, Size()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Comm().PeerWorkspace(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Comm().Barrier().ok());
}

TEST(Communicator, AllReduceEveryDtypeAndOp) {
  for (at::ScalarType dtype : kAllDtypes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      const std::string tag = absl::StrCat("allreduce", ReduceOpName(op));
      const std::vector<int64_t> shape = {13, 11};  // 143 elements: no power of two
      at::Tensor t = OnDevice(InputOf(tag, Rank(), shape, dtype));
      absl::Status status = Comm().AllReduce(t, op);
      ASSERT_TRUE(status.ok()) << status << " " << Describe(tag, dtype);
      ASSERT_TRUE(Comm().Synchronize().ok());
      ExpectReduced(t, Reference(tag, shape, dtype, op), dtype, op, Describe(tag, dtype));
    }
  }
}

TEST(Communicator, ReduceScatterEveryDtype) {
  for (at::ScalarType dtype : kAllDtypes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      for (int64_t dim : {0, 1}) {
        const std::string tag = absl::StrCat("reducescatter", ReduceOpName(op), dim);
        const std::vector<int64_t> shape =
            dim == 0 ? std::vector<int64_t>{3 * Size(), 7} : std::vector<int64_t>{5, 3 * Size()};
        auto got = Comm().ReduceScatter(OnDevice(InputOf(tag, Rank(), shape, dtype)), dim, op);
        ASSERT_TRUE(got.ok()) << got.status() << " " << Describe(tag, dtype);
        at::Tensor want = Reference(tag, shape, dtype, op).chunk(Size(), dim)[Rank()];
        ExpectReduced(*got, want.contiguous(), dtype, op, Describe(tag, dtype));
      }
    }
  }
}

TEST(Communicator, BroadcastFromEveryRoot) {
  for (at::ScalarType dtype : kAllDtypes) {
    for (int root = 0; root < Size(); ++root) {
      const std::string tag = absl::StrCat("broadcast", root);
      const std::vector<int64_t> shape = {9, 7};
      at::Tensor t = OnDevice(InputOf(tag, Rank(), shape, dtype));
      absl::Status status = Comm().Broadcast(t, root);
      ASSERT_TRUE(status.ok()) << status << " " << Describe(tag, dtype);
      ExpectBitEqual(t, InputOf(tag, root, shape, dtype), Describe(tag, dtype));
    }
  }
}

TEST(Communicator, BatchedSendRecvRingDoesNotDeadlock) {
  const int next = (Rank() + 1) % Size();
  const int prev = (Rank() + Size() - 1) % Size();
  for (at::ScalarType dtype : {at::kBFloat16, at::kFloat8_e4m3fn, at::kLong}) {
    // Two messages each way per step: a K block and a V block, as ring attention sends them.
    const std::vector<int64_t> shape = {17, 3};
    at::Tensor k_send = OnDevice(InputOf("ring_k", Rank(), shape, dtype));
    at::Tensor v_send = OnDevice(InputOf("ring_v", Rank(), shape, dtype));
    at::Tensor k_recv = at::empty_like(k_send);
    at::Tensor v_recv = at::empty_like(v_send);
    std::vector<P2POp> ops = {{P2POp::Kind::kSend, k_send, next},
                              {P2POp::Kind::kSend, v_send, next},
                              {P2POp::Kind::kRecv, k_recv, prev},
                              {P2POp::Kind::kRecv, v_recv, prev}};
    absl::Status status = Comm().SendRecv(ops);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_TRUE(Comm().Synchronize().ok());
    ExpectBitEqual(k_recv, InputOf("ring_k", prev, shape, dtype), Describe("ring_k", dtype));
    ExpectBitEqual(v_recv, InputOf("ring_v", prev, shape, dtype), Describe("ring_v", dtype));
  }
}

TEST(Communicator, Barrier) { EXPECT_TRUE(Comm().Barrier().ok()); }

TEST(Communicator, SplitFormsSubgroupsOrderedByKey) {
  // Even and odd ranks, each ordered by descending old rank; on 3+ ranks the last rank sits out.
  const bool sits_out = Size() >= 3 && Rank() == Size() - 1;
  const int color = sits_out ? -1 : Rank() % 2;
  auto sub = Comm().Split(color, /*key=*/-Rank());
  ASSERT_TRUE(sub.ok()) << sub.status();
  if (sits_out) {
    EXPECT_EQ(*sub, nullptr);
    return;
  }
  ASSERT_NE(*sub, nullptr);
  std::vector<int> members;
  for (int r = 0; r < Size(); ++r) {
    if (r % 2 == color && !(Size() >= 3 && r == Size() - 1)) members.push_back(r);
  }
  std::reverse(members.begin(), members.end());
  const int expected_rank =
      static_cast<int>(std::find(members.begin(), members.end(), Rank()) - members.begin());
  EXPECT_EQ((*sub)->size(), static_cast<int>(members.size()));
  EXPECT_EQ((*sub)->rank(), expected_rank);
  at::Tensor t = OnDevice(InputOf("split", Rank(), {6}, at::kLong));
  ASSERT_TRUE((*sub)->AllReduce(t).ok());
  ASSERT_TRUE((*sub)->Synchronize().ok());
  at::Tensor want = at::zeros({6}, at::kLong);
  for (int r : members) want += InputOf("split", r, {6}, at::kLong);
  EXPECT_TRUE(at::equal(t.cpu(), want));
}

TEST(Communicator, BadInputIsRejectedAndChangesNothing) {
  // Indivisible scatter dimension.
  auto a2a = Comm().AllToAll(OnDevice(at::ones({Size() * 2 + 1, 3})), 0, 0);
  EXPECT_EQ(a2a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a2a.status().message().find("does not divide"), absl::string_view::npos)
      << a2a.status();
  // Unsupported dtype.
  at::Tensor f64 = OnDevice(at::ones({4}, at::kDouble));
  EXPECT_EQ(Comm().AllReduce(f64).code(), absl::StatusCode::kInvalidArgument);
  // Out-of-range dims and roots.
  EXPECT_EQ(Comm().AllGather(OnDevice(at::ones({2})), 3).status().code(),
            absl::StatusCode::kInvalidArgument);
  at::Tensor t = OnDevice(at::ones({2}));
  EXPECT_EQ(Comm().Broadcast(t, Size()).code(), absl::StatusCode::kInvalidArgument);
  // A tensor on the wrong device.
  if (Comm().device().is_cuda()) {
    at::Tensor cpu = at::ones({4});
    EXPECT_EQ(Comm().AllReduce(cpu).code(), absl::StatusCode::kInvalidArgument);
  }
  // The group still works.
  at::Tensor ok = OnDevice(InputOf("after_bad", Rank(), {5}, at::kInt));
  ASSERT_TRUE(Comm().AllReduce(ok).ok());
  ASSERT_TRUE(Comm().Synchronize().ok());
  ExpectReduced(ok, Reference("after_bad", {5}, at::kInt, ReduceOp::kSum), at::kInt, ReduceOp::kSum,
                "after bad input");
}

// ---- failure scenarios ----------------------------------------------------------------------

// Only this rank was started: creation must fail with DeadlineExceeded, not hang.
int NeverArrive() {
  const auto start = std::chrono::steady_clock::now();
  auto comm = MakeCommunicator("never_arrive");
  const auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  std::cout << "creation: " << comm.status() << " after " << took.count() << " ms" << std::endl;
  if (comm.ok()) return 1;
  if (comm.status().code() != absl::StatusCode::kDeadlineExceeded) return 2;
  return 0;
}

// Every rank joins; then every rank but 0 exits, and rank 0's next collective must fail within
// the timeout, and every later call must fail at once.
int PeerDies() {
  auto comm = MakeCommunicator("peer_dies");
  if (!comm.ok()) {
    std::cout << "creation failed: " << comm.status() << std::endl;
    return 3;
  }
  at::Tensor t = at::ones({1024}).to((*comm)->device());
  if (!(*comm)->AllReduce(t).ok() || !(*comm)->Synchronize().ok()) return 4;
  if ((*comm)->rank() != 0) std::_Exit(0);  // dies without a word to its peers
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = (*comm)->AllReduce(t);
  if (status.ok()) status = (*comm)->Synchronize();
  const auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  std::cout << "collective with a dead peer: " << status << " after " << took.count() << " ms"
            << std::endl;
  if (status.ok()) return 5;
  absl::Status later = (*comm)->AllReduce(t);
  std::cout << "later call: " << later << std::endl;
  if (later.ok()) return 6;
  std::_Exit(0);  // skip destructors: the group is gone, and the point was made
}

// Runs `wait` while another thread aborts through `abort` after 300 ms; returns how `wait`
// ended and prints how long it took (the abort must end it, not the timeout).
absl::Status AbortedAfterAWhile(const char* what, const std::function<void()>& abort,
                                const std::function<absl::Status()>& wait,
                                milliseconds* took = nullptr) {
  std::thread aborter([&] {
    std::this_thread::sleep_for(milliseconds(300));
    abort();
  });
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = wait();
  aborter.join();
  const auto elapsed =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  std::cout << what << ": " << status << " after " << elapsed.count() << " ms" << std::endl;
  if (took != nullptr) *took = elapsed;
  return status;
}

// Every rank joins a world, a communicator split from it and a second world; then rank 0 stops
// taking part (it stays alive, as a hung peer does), and each other rank's collective, its
// split's collective and its receive must end ABORTED soon after another thread aborts them,
// long before the timeout; the aborted communicators must go away without waiting for it.
int AbortWaiting() {
  auto world = MakeCommunicator("abort_world");
  if (!world.ok()) return 3;
  auto split = (*world)->Split(0, (*world)->rank());
  auto p2p = MakeCommunicator("abort_p2p");
  if (!split.ok() || *split == nullptr || !p2p.ok()) return 4;
  at::Tensor t = at::ones({1024}).to((*world)->device());
  if (!(*world)->AllReduce(t).ok() || !(*world)->Synchronize().ok()) return 5;
  if ((*world)->rank() == 0) {
    std::this_thread::sleep_for(milliseconds(6000));
    std::_Exit(0);  // the others have made their point by now
  }
  const milliseconds bound(5000);  // the timeout is 120 s
  milliseconds took;
  // The split shares the world's signal: aborting the world ends the split's collective.
  absl::Status status = AbortedAfterAWhile(
      "split's all-reduce", [&] { (*world)->Abort(absl::AbortedError("test")); },
      [&] {
        absl::Status reduced = (*split)->AllReduce(t);
        return reduced.ok() ? (*split)->Synchronize() : reduced;
      },
      &took);
  if (status.code() != absl::StatusCode::kAborted || took > bound) return 6;
  if ((*world)->AllReduce(t).ok()) return 7;  // aborted for good
  std::vector<P2POp> receive = {{P2POp::Kind::kRecv, t, 0}};
  status = AbortedAfterAWhile(
      "receive", [&] { (*p2p)->Abort(absl::AbortedError("test")); },
      [&] {
        absl::Status received = (*p2p)->SendRecv(receive);
        return received.ok() ? (*p2p)->Synchronize() : received;  // NCCL returns once queued
      },
      &took);
  if (status.code() != absl::StatusCode::kAborted || took > bound) return 8;
  const auto start = std::chrono::steady_clock::now();
  split->reset();
  world->reset();
  p2p->reset();
  const auto gone = std::chrono::steady_clock::now() - start;
  std::cout << "destroyed in " << std::chrono::duration_cast<milliseconds>(gone).count() << " ms"
            << std::endl;
  if (gone > milliseconds(2000)) return 9;
  std::_Exit(0);
}

// Only this rank was started: an abort must end the rendezvous long before its timeout.
int AbortRendezvous() {
  auto signal = std::make_shared<AbortSignal>();
  absl::StatusOr<std::unique_ptr<Communicator>> comm;
  milliseconds took;
  const absl::Status status = AbortedAfterAWhile(
      "rendezvous", [&] { signal->Fire(absl::AbortedError("test")); },
      [&] {
        comm = MakeCommunicator("abort_rendezvous", signal);
        return comm.status();
      },
      &took);
  if (status.code() != absl::StatusCode::kAborted) return 2;
  return took < milliseconds(5000) ? 0 : 3;
}

}  // namespace
}  // namespace raylight::comm

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  using namespace raylight;
  auto store = FileStore::Open(absl::GetFlag(FLAGS_store_dir));
  if (!store.ok()) {
    std::cerr << store.status() << std::endl;
    return 10;
  }
  comm::g_store = std::move(*store);
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  if (scenario == "never_arrive") return comm::NeverArrive();
  if (scenario == "peer_dies") return comm::PeerDies();
  if (scenario == "abort_waiting") return comm::AbortWaiting();
  if (scenario == "abort_rendezvous") return comm::AbortRendezvous();
  auto made = comm::MakeCommunicator("suite");
  if (!made.ok()) {
    std::cerr << "rank " << absl::GetFlag(FLAGS_rank) << ": " << made.status() << std::endl;
    return 11;
  }
  comm::g_comm = std::move(*made);
  const int result = RUN_ALL_TESTS();
  // Leave together, so that no rank tears down the group under a peer still using it.
  absl::Status barrier = comm::g_comm->Barrier();
  if (!barrier.ok()) std::cerr << "final barrier: " << barrier << std::endl;
  comm::g_comm.reset();
  return result != 0 ? result : (barrier.ok() ? 0 : 12);
}
