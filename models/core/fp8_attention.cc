#include "models/core/fp8_attention.h"

#include <cmath>
#include <cstdio>

#if RAYLIGHT_HAVE_CUDNN_FRONTEND
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cudnn_frontend.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "models/core/fp8_attention_cuda.h"
#include "models/core/fp8_linear.h"
#endif

namespace raylight::models {

#if RAYLIGHT_HAVE_CUDNN_FRONTEND
namespace {

namespace fe = cudnn_frontend;
using TensorAttributes = std::shared_ptr<fe::graph::Tensor_attributes>;

constexpr float kE4m3Max = static_cast<float>(kFp8E4m3Max);  // fp8_linear.h's

// What a built graph depends on: the device (its handle) and the sizes (the strides follow).
using Shape = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t>;  // device b h lq lk d

// One shape's built graph and the tensors its variant pack names.
struct Plan {
  fe::graph::Graph graph;
  TensorAttributes q, k, v, descale_q, descale_k, descale_v, descale_s, scale_o, o, amax_s, amax_o;
  at::Tensor descale_s_value;  // 1/448 on the device
  int64_t workspace = 0;
  bool tuned = false;  // its fastest plan chosen by timing (on the first execution)
  uint64_t last_used = 0;
};

void Check(fe::error_t status, const char* step) {
  TORCH_CHECK(status.is_good(), "attention fp8: cuDNN's ", step, ": ", status.get_message());
}

// Builds the graph of cuDNN's fp8 attention for q, k, v and the output all [B, L, H, D] in
// memory (the [B, H, L, D] dims cuDNN takes, with the strides of that layout).
std::unique_ptr<Plan> Build(cudnnHandle_t handle, const Shape& shape) {
  const auto [device, b, h, lq, lk, d] = shape;
  auto plan = std::make_unique<Plan>();
  fe::graph::Graph& g = plan->graph;
  g.set_io_data_type(fe::DataType_t::FP8_E4M3)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto rows = [&](const char* name, int64_t l) {
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name(name)
                        .set_dim({b, h, l, d})
                        .set_stride({l * h * d, d, h * d, 1}));
  };
  auto scalar = [&](const char* name) {
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name(name)
                        .set_dim({1, 1, 1, 1})
                        .set_stride({1, 1, 1, 1})
                        .set_data_type(fe::DataType_t::FLOAT));
  };
  plan->q = rows("Q", lq);
  plan->k = rows("K", lk);
  plan->v = rows("V", lk);
  plan->descale_q = scalar("Descale_Q");
  plan->descale_k = scalar("Descale_K");
  plan->descale_v = scalar("Descale_V");
  plan->descale_s = scalar("Descale_S");
  plan->scale_o = scalar("Scale_O");
  const TensorAttributes scale_s = g.tensor(kE4m3Max);  // by value: probabilities in [0, 1]
  auto options = fe::graph::SDPA_fp8_attributes()
                     .set_name("fp8_attention")
                     .set_generate_stats(false)
                     .set_attn_scale(1.0f / std::sqrt(static_cast<float>(d)));
  auto [o, stats, amax_s, amax_o] =
      g.sdpa_fp8(plan->q, plan->k, plan->v, plan->descale_q, plan->descale_k, plan->descale_v,
                 plan->descale_s, scale_s, plan->scale_o, options);
  o->set_output(true)
      .set_dim({b, h, lq, d})
      .set_stride({lq * h * d, d, h * d, 1})
      .set_data_type(fe::DataType_t::FP8_E4M3);
  for (const TensorAttributes& amax : {amax_s, amax_o}) {
    amax->set_output(true)
        .set_dim({1, 1, 1, 1})
        .set_stride({1, 1, 1, 1})
        .set_data_type(fe::DataType_t::FLOAT);
  }
  plan->o = o;
  plan->amax_s = amax_s;
  plan->amax_o = amax_o;
  Check(g.validate(), "graph");
  Check(g.build_operation_graph(handle), "operation graph");
  // Every plan cuDNN offers (its heuristics' and its fallback list), timed on the first execution:
  // the heuristics' first choice is not always the fastest at video lengths.
  Check(g.create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}), "execution plans");
  Check(g.check_support(handle), "support check");
  Check(g.build_plans(fe::BuildPlanPolicy_t::ALL), "plans");
  Check(g.get_workspace_size(plan->workspace), "workspace size");
  plan->descale_s_value = at::full({1}, 1.0f / kE4m3Max,
                                   at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, device));
  return plan;
}

// One cuDNN handle per device and one built graph per shape, for the process (building a graph
// takes milliseconds; a forward calls it once per block). Never destroyed: a handle must not be
// released during static destruction, after the CUDA context may be gone.
class Plans {
 public:
  static Plans& Get() {
    static Plans* plans = new Plans;
    return *plans;
  }

  // Runs `run(handle, plan)` under the cache's lock (a handle runs one graph at a time).
  template <typename Run>
  void With(const Shape& shape, Run&& run) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int device = std::get<0>(shape);
    auto [handle_at, added] = handles_.try_emplace(device, nullptr);
    if (added) {
      const cudnnStatus_t status = cudnnCreate(&handle_at->second);
      if (status != CUDNN_STATUS_SUCCESS) {
        handles_.erase(handle_at);
        TORCH_CHECK(false, "attention fp8: cudnnCreate: ", cudnnGetErrorString(status));
      }
    }
    auto [plan_at, built] = plans_.try_emplace(shape);
    if (built) {
      try {
        plan_at->second = Build(handle_at->second, shape);
      } catch (...) {
        plans_.erase(plan_at);  // the next call tries again
        throw;
      }
    }
    Plan& plan = *plan_at->second;
    plan.last_used = ++uses_;
    ForgetLeastRecentlyUsed();
    run(handle_at->second, plan);
  }

 private:
  // A worker meets few shapes (each job's, as each model remembers its last 16 warm-ups), but
  // nothing bounds them: beyond kMaxPlans built graphs the least recently used goes.
  static constexpr size_t kMaxPlans = 32;
  void ForgetLeastRecentlyUsed() {
    while (plans_.size() > kMaxPlans) {
      auto oldest = plans_.begin();
      for (auto it = plans_.begin(); it != plans_.end(); ++it) {
        if (it->second->last_used < oldest->second->last_used) oldest = it;
      }
      plans_.erase(oldest);  // never the one just used: it is the newest
    }
  }

  std::mutex mutex_;
  std::map<int, cudnnHandle_t> handles_;
  std::map<Shape, std::unique_ptr<Plan>> plans_;
  uint64_t uses_ = 0;
};

// Times each built plan on these inputs (cuDNN's frontend autotune: it synchronises the device,
// once per shape and process) and keeps the fastest; says which on stderr.
void Tune(Plan& plan, cudnnHandle_t handle, std::unordered_map<TensorAttributes, void*>& pack,
          const Shape& shape, const at::TensorOptions& options) {
  const int64_t count = plan.graph.get_execution_plan_count();
  if (count > 1) {
    at::Tensor workspace = at::empty(
        {std::max<int64_t>(plan.graph.get_autotune_workspace_size(), 1)}, options.dtype(at::kByte));
    Check(plan.graph.autotune(handle, pack, workspace.data_ptr()), "autotune");
    Check(plan.graph.get_workspace_size(plan.workspace), "workspace size");
  }
  std::string name = "(unnamed)";
  if (plan.graph.get_plan_name(name).is_bad()) name = "(unnamed)";
  const auto [device, b, h, lq, lk, d] = shape;
  std::fprintf(
      stderr, "fp8 attention [%ld, %ld, %ld, %ld, %ld] on cuda:%d: %ld plans, running %s\n",
      static_cast<long>(b), static_cast<long>(h), static_cast<long>(lq), static_cast<long>(lk),
      static_cast<long>(d), device, static_cast<long>(count), name.c_str());
  plan.tuned = true;
}

void CheckLaunch(int error, const char* what) {
  TORCH_CHECK(error == 0, "attention fp8: ", what, ": ",
              cudaGetErrorString(static_cast<cudaError_t>(error)));
}

// x (bf16, contiguous) as e4m3 with its factors {descale, scale} at `factors`.
at::Tensor Quantize(const at::Tensor& x, float* scratch, float* factors, cudaStream_t stream) {
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(at::kFloat8_e4m3fn));
  CheckLaunch(LaunchQuantizeTensorFp8(x.data_ptr(), x.numel(), scratch, factors,
                                      static_cast<uint8_t*>(out.data_ptr()), stream),
              "quantisation");
  return out;
}

}  // namespace

bool Fp8AttentionRuns(const at::Device& device, std::string* why) {
  auto no = [&](std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return false;
  };
  if (!device.is_cuda()) return no("it runs on CUDA devices only");
  const cudaDeviceProp* properties = at::cuda::getDeviceProperties(device.index());
  if (properties->major < 9) {
    return no("cuDNN's fp8 attention needs compute capability 9.0 (Hopper) or newer; device " +
              std::to_string(device.index()) + " has " + std::to_string(properties->major) + "." +
              std::to_string(properties->minor));
  }
  if (cudnnGetVersion() < 90100) return no("cuDNN's fp8 attention needs cuDNN 9.1 or newer");
  return true;
}

Fp8AttentionOutput Fp8AttentionE4m3(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention fp8: q, k, v must be [B, L, H, D]");
  std::string why;
  TORCH_CHECK(Fp8AttentionRuns(q.device(), &why), "attention fp8: ", why);
  for (const at::Tensor* t : {&q, &k, &v}) {
    TORCH_CHECK(t->scalar_type() == at::kBFloat16 && t->device() == q.device(),
                "attention fp8: q, k, v must be bf16 on one device");
  }
  const int64_t b = q.size(0), lq = q.size(1), h = q.size(2), d = q.size(3), lk = k.size(1);
  TORCH_CHECK(k.sizes() == v.sizes() && k.size(0) == b && k.size(2) == h && k.size(3) == d,
              "attention fp8: k and v must be [B, Lk, H, D] with q's B, H and D");
  TORCH_CHECK(d % 16 == 0 && d <= 256, "attention fp8: head dim ", d,
              " (cuDNN's fp8 attention takes multiples of 16 up to 256)");
  if (q.numel() == 0 || lk == 0) {  // e4m3's zero is the zero byte
    return {at::zeros(q.sizes(), q.options().dtype(at::kByte)).view(at::kFloat8_e4m3fn),
            at::ones({1}, q.options().dtype(at::kFloat))};
  }

  const c10::cuda::CUDAGuard guard(q.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  // Per tensor: a scratch maximum, then {descale, scale} (k's kernel keeps its own scratch).
  at::Tensor factors = at::empty({9}, q.options().dtype(at::kFloat));
  float* f = factors.data_ptr<float>();
  const at::Tensor q8 = Quantize(qc, f + 0, f + 1, stream);
  // k less its mean over the keys (per sample, head and channel), as SageAttention smooths it:
  // exact (each query's scores move by one constant, which the softmax takes out), and the shared
  // part of the keys that trained models carry in a few channels no longer sets the scale and the
  // rounding of every key. Subtracted in fp32 in the quantisation's own pass.
  const at::Tensor k8 = at::empty(kc.sizes(), kc.options().dtype(at::kFloat8_e4m3fn));
  const at::Tensor key_scratch = at::empty({KeysFp8ScratchFloats(b, lk, h * d)}, factors.options());
  CheckLaunch(LaunchQuantizeKeysFp8(kc.data_ptr(), b, lk, h * d, key_scratch.data_ptr<float>(),
                                    f + 4, static_cast<uint8_t*>(k8.data_ptr()), stream),
              "keys' quantisation");
  const at::Tensor v8 = Quantize(vc, f + 6, f + 7, stream);
  float* descale_v = f + 7;
  float* scale_o = f + 8;  // v's scale: |o| <= amax(v)
  at::Tensor o8 = at::empty(qc.sizes(), q8.options());
  at::Tensor amax = at::empty({2}, factors.options());

  const Shape shape{q.device().index(), b, h, lq, lk, d};
  Plans::Get().With(shape, [&](cudnnHandle_t handle, Plan& plan) {
    const cudnnStatus_t set = cudnnSetStream(handle, stream);
    TORCH_CHECK(set == CUDNN_STATUS_SUCCESS,
                "attention fp8: cudnnSetStream: ", cudnnGetErrorString(set));
    std::unordered_map<TensorAttributes, void*> pack = {
        {plan.q, q8.data_ptr()},
        {plan.k, k8.data_ptr()},
        {plan.v, v8.data_ptr()},
        {plan.descale_q, f + 1},
        {plan.descale_k, f + 4},
        {plan.descale_v, descale_v},
        {plan.descale_s, plan.descale_s_value.data_ptr()},
        {plan.scale_o, scale_o},
        {plan.o, o8.data_ptr()},
        {plan.amax_s, amax.data_ptr<float>()},
        {plan.amax_o, amax.data_ptr<float>() + 1},
    };
    if (!plan.tuned) Tune(plan, handle, pack, shape, q.options());
    at::Tensor workspace =
        at::empty({std::max<int64_t>(plan.workspace, 1)}, q.options().dtype(at::kByte));
    Check(plan.graph.execute(handle, pack, workspace.data_ptr()), "execution");
  });
  return {o8, factors.narrow(0, 7, 1)};  // v's descale
}

at::Tensor DequantizeFp8Attention(const Fp8AttentionOutput& out) {
  TORCH_CHECK(out.values.scalar_type() == at::kFloat8_e4m3fn && out.values.is_contiguous() &&
                  out.descale.scalar_type() == at::kFloat && out.descale.numel() == 1,
              "attention fp8: an output is contiguous e4m3 values and one fp32 descale");
  const c10::cuda::CUDAGuard guard(out.values.device());
  at::Tensor bf16 = at::empty(out.values.sizes(), out.values.options().dtype(at::kBFloat16));
  CheckLaunch(LaunchDequantizeFp8(static_cast<const uint8_t*>(out.values.data_ptr()),
                                  out.values.numel(), out.descale.data_ptr<float>(),
                                  bf16.data_ptr(), at::cuda::getCurrentCUDAStream()),
              "dequantisation");
  return bf16;
}

#else  // built without cuDNN's frontend headers

bool Fp8AttentionRuns(const at::Device&, std::string* why) {
  if (why != nullptr)
    *why = "this build has no fp8 attention (cuDNN's frontend headers were not found)";
  return false;
}

Fp8AttentionOutput Fp8AttentionE4m3(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  std::string why;
  Fp8AttentionRuns(at::kCPU, &why);
  TORCH_CHECK(false, "attention fp8: ", why);
}

at::Tensor DequantizeFp8Attention(const Fp8AttentionOutput&) {
  std::string why;
  Fp8AttentionRuns(at::kCPU, &why);
  TORCH_CHECK(false, "attention fp8: ", why);
}

#endif

at::Tensor Fp8Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return DequantizeFp8Attention(Fp8AttentionE4m3(q, k, v));
}

}  // namespace raylight::models
