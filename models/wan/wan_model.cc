#include "models/wan/wan_model.h"

#include <c10/core/InferenceMode.h>

#include "absl/cleanup/cleanup.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/attention.h"
#include "models/core/batch_rows.h"
#include "models/core/block_subset.h"
#include "models/core/dit_fused.h"
#include "models/core/fp8_linear.h"
#include "models/core/sequence_parallel.h"
#include "models/core/side_stream.h"
#include "models/wan/wan_rope.h"

namespace raylight::models::wan {
namespace {

// Tokens per forward above this are refused before any allocation (1280x720x81 is 75,600).
constexpr int64_t kMaxTokens = int64_t{1} << 20;
constexpr int64_t kMaxBatch = 64;

std::string Shape(const at::Tensor& t) {
  return t.defined() ? absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]") : "undefined";
}

at::Tensor Linear(const at::Tensor& x, const WeightSet& w, const std::string& name) {
  return ModuleLinear(x, w, name);  // fp8 compute's weights too
}

// The FFN, ffn.2(gelu_tanh(ffn.0(h))). The fused kernels take the GELU into ffn.0's GEMM epilogue
// where they apply (bf16 weights on a GPU); fp8 compute's GELU is computed as ffn.2's input is
// quantised, in the same pass (LinearInput); otherwise the chain.
at::Tensor FeedForward(const at::Tensor& h, const WeightSet& w) {
  if (FusedKernels()) {
    const at::Tensor hidden = FusedLinearGelu(h, w.Get("ffn.0.weight"), w.Get("ffn.0.bias"));
    if (hidden.defined()) return Linear(hidden, w, "ffn.2");
  }
  return ModuleLinear(LinearInput(Linear(h, w, "ffn.0"), Fp8QuantActivation::kGeluTanh), w,
                      "ffn.2");
}

// x * rsqrt(mean(x^2) + eps) * weight over all heads together; libtorch's fused kernel
// accumulates in fp32 for bf16 inputs, as the reference's explicit fp32 norm does.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return at::rms_norm(x, {x.size(-1)}, weight, eps);
}

// LayerNorm without affine in fp32.
at::Tensor PlainLayerNorm(const at::Tensor& x, int64_t dim, double eps) {
  return at::layer_norm(x.to(at::kFloat), {dim}, {}, {}, eps);
}

struct Modulation {
  std::vector<at::Tensor> parts;  // each [B, 1, dim] or [B, L, dim], fp32
};

// table [1, n, dim] + e ([B, n, dim], or [B, L, n, dim] per token) -> n parts.
Modulation Modulate(const at::Tensor& table, const at::Tensor& e) {
  Modulation m;
  if (e.dim() == 3) {
    at::Tensor sum = table.to(at::kFloat) + e;  // [B, n, dim]
    for (int64_t i = 0; i < sum.size(1); ++i) m.parts.push_back(sum.select(1, i).unsqueeze(1));
  } else {
    at::Tensor sum = table.to(at::kFloat).unsqueeze(0) + e;  // [B, L, n, dim]
    for (int64_t i = 0; i < sum.size(2); ++i) m.parts.push_back(sum.select(2, i));
  }
  return m;
}

at::Tensor SplitHeads(const at::Tensor& x, int64_t heads) { return x.unflatten(-1, {heads, -1}); }

at::Tensor CrossAttention(const WanConfig& c, const at::Tensor& h, const at::Tensor& context,
                          const at::Tensor& context_img, const WeightSet& w,
                          const ParallelContext& parallel) {
  at::Tensor q = RmsNorm(Linear(h, w, "cross_attn.q"), w.Get("cross_attn.norm_q.weight"), c.eps);
  at::Tensor k =
      RmsNorm(Linear(context, w, "cross_attn.k"), w.Get("cross_attn.norm_k.weight"), c.eps);
  at::Tensor v = Linear(context, w, "cross_attn.v");
  q = SplitHeads(q, c.num_heads);
  at::Tensor out = Attention(q, SplitHeads(k, c.num_heads), SplitHeads(v, c.num_heads), parallel,
                             AttentionKind::kCross);
  if (context_img.defined()) {
    at::Tensor k_img = RmsNorm(Linear(context_img, w, "cross_attn.k_img"),
                               w.Get("cross_attn.norm_k_img.weight"), c.eps);
    at::Tensor v_img = Linear(context_img, w, "cross_attn.v_img");
    out = out + Attention(q, SplitHeads(k_img, c.num_heads), SplitHeads(v_img, c.num_heads),
                          parallel, AttentionKind::kCross);
  }
  return Linear(out.flatten(-2), w, "cross_attn.o");
}

// Calls op(begin, size) over the batch rows [begin, begin + size) that an elementwise op with
// `modulation` should run on at once: sample by sample where a per-sample modulation [B, 1, dim]
// broadcasts over several samples (the broadcast keeps PyTorch's elementwise iteration at three
// dimensions, ~11% slower per element on an H200 than the two of one sample:
// tests/bench/ulysses_kernels.py --what memory), else the whole batch.
void BySample(const at::Tensor& modulation,
              absl::FunctionRef<void(int64_t begin, int64_t size)> op) {
  const int64_t batch = modulation.size(0);
  if (batch == 1 || modulation.size(1) != 1) {
    op(0, batch);
    return;
  }
  for (int64_t b = 0; b < batch; ++b) op(b, 1);
}

// LN(x) * (1 + scale) + shift, computed in fp32 and written once in `dtype` (one fused
// multiply-add pass after the norm instead of three passes and a cast).
at::Tensor ModulatedNorm(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
                         int64_t dim, double eps, at::ScalarType dtype) {
  if (FusedKernels()) {  // one pass on the GPU (dit_fused.h)
    at::Tensor fused = FusedModulatedLayerNorm(x, shift, scale, eps, dtype);
    if (fused.defined()) return fused;
  }
  const at::Tensor normed = PlainLayerNorm(x, dim, eps);
  const at::Tensor out = at::empty(normed.sizes(), normed.options().dtype(dtype));
  const at::Tensor factor = 1 + scale;
  BySample(shift, [&](int64_t begin, int64_t size) {
    at::Tensor rows = out.narrow(0, begin, size);
    at::addcmul_out(rows, shift.narrow(0, begin, size), normed.narrow(0, begin, size),
                    factor.narrow(0, begin, size));
  });
  return out;
}

// x += branch * gate, in place (x fp32, branch in the compute dtype, gate fp32).
void AddGated(const at::Tensor& x, const at::Tensor& branch, const at::Tensor& gate) {
  BySample(gate, [&](int64_t begin, int64_t size) {
    x.narrow(0, begin, size).addcmul_(branch.narrow(0, begin, size), gate.narrow(0, begin, size));
  });
}

// Rows [begin, begin + size) of a block's batch: views of its residual stream (updated in
// place) and its self-attention gate, and the self-attention in flight for them.
struct MicroBatch {
  at::Tensor x;
  at::Tensor gate;  // the self-attention's residual gate (the norms run on the whole batch)
  std::unique_ptr<SequenceAttention> attention;
};

// Micro-batch `lane` of `lanes`: its rows of a batch-first tensor (all of them for one lane).
at::Tensor LaneRows(const at::Tensor& t, size_t lane, size_t lanes) {
  if (lanes == 1 || !t.defined()) return t;
  const int64_t rows = t.size(0) / static_cast<int64_t>(lanes);
  return t.narrow(0, static_cast<int64_t>(lane) * rows, rows);
}

// The same rows of a linear layer's input, sharing the tokens it has quantised.
LinearInput LaneRows(const LinearInput& input, size_t lane, size_t lanes) {
  if (lanes == 1) return input;
  const int64_t rows = input.sizes()[0] / static_cast<int64_t>(lanes);
  return input.Narrow(static_cast<int64_t>(lane) * rows, rows);
}

// Hands q, k, v of the block's self-attention (h: the normed rows of the whole batch) to each
// micro-batch's attention, each as soon as it is computed, so that with Ulysses its exchange
// overlaps the next projection. Under fp8 compute h is quantised once for the three (LinearInput).
// q and k are projected over every row at once (one GEMM each at twice the rows, which cuBLAS runs
// ~5% faster per row at 16,380 rows per micro-batch); v per micro-batch, so that A's value exchange
// runs beside B's v GEMM and B's beside A's attention.
void StartSelfAttention(const WanConfig& c, const at::Tensor& h, const WeightSet& w,
                        const RopeTable& rope, std::vector<MicroBatch>& parts) {
  auto lane_rows = [&](const at::Tensor& t, size_t lane) {
    return LaneRows(t, lane, parts.size());
  };
  const LinearInput input(h);
  // RoPE(RMSNorm(x W^T + b)) over all heads, for "q" and "k".
  auto rotated = [&](const std::string& name) {
    const at::Tensor projected = ModuleLinear(input, w, "self_attn." + name);
    const at::Tensor& norm = w.Get("self_attn.norm_" + name + ".weight");
    if (FusedKernels()) {  // one pass on the GPU (dit_fused.h)
      at::Tensor fused = FusedRmsNormRope(projected, norm, c.eps, rope.rotation, c.num_heads);
      if (fused.defined()) return fused;
    }
    return ApplyRope(SplitHeads(RmsNorm(projected, norm, c.eps), c.num_heads), rope);
  };
  const at::Tensor q = rotated("q");
  for (size_t lane = 0; lane < parts.size(); ++lane) {
    parts[lane].attention->SetQuery(lane_rows(q, lane));
  }
  const at::Tensor k = rotated("k");
  for (size_t lane = 0; lane < parts.size(); ++lane) {
    parts[lane].attention->SetKey(lane_rows(k, lane));
  }
  for (size_t lane = 0; lane < parts.size(); ++lane) {
    parts[lane].attention->SetValue(SplitHeads(
        ModuleLinear(LaneRows(input, lane, parts.size()), w, "self_attn.v"), c.num_heads));
  }
}

// The self-attention's output projection for one micro-batch (fp8 attention's e4m3 output
// straight into an fp8 output projection: SequenceAttention::OutputAsLinearInput).
at::Tensor SelfAttentionOutput(MicroBatch& mb, const WeightSet& w) {
  return ModuleLinear(mb.attention->OutputAsLinearInput(), w, "self_attn.o");
}

// x += branch * gate (gate undefined: x += branch), then ModulatedNorm of the updated x: on the
// GPU one pass over x (dit_fused.h) where the add and the norm each read it.
at::Tensor AddThenModulatedNorm(const WanConfig& c, const at::Tensor& x, const at::Tensor& branch,
                                const at::Tensor& gate, const at::Tensor& shift,
                                const at::Tensor& scale, at::ScalarType dtype) {
  if (FusedKernels()) {
    at::Tensor fused = FusedAddModulatedLayerNorm(x, branch, gate, shift, scale, c.eps, dtype);
    if (fused.defined()) return fused;
  }
  if (gate.defined()) {
    AddGated(x, branch, gate);
  } else {
    x.add_(branch);
  }
  return ModulatedNorm(x, shift, scale, c.dim, c.eps, dtype);
}

// bf16(LayerNorm(x) * weight + bias), the affine norm before the cross-attention, after the
// self-attention's residual add x += branch * gate where `branch` is given. On the GPU as the
// fused modulated norm (dit_fused.h) with scale weight - 1 and shift bias (1 + (weight - 1) is the
// weight again in fp32): one pass replaces the add's, the fp32 norm's and its cast's.
at::Tensor CrossAttentionNorm(const WanConfig& c, const at::Tensor& x, const WeightSet& w,
                              at::ScalarType dtype, const at::Tensor& branch = {},
                              const at::Tensor& gate = {}) {
  const at::Tensor weight = w.Get("norm3.weight").to(at::kFloat);
  const at::Tensor bias = w.Get("norm3.bias").to(at::kFloat);
  if (FusedKernels()) {
    const std::vector<int64_t> per_sample = {x.size(0), 1, c.dim};
    const at::Tensor shift = bias.view({1, 1, -1}).expand(per_sample);
    const at::Tensor scale = (weight - 1).view({1, 1, -1}).expand(per_sample);
    at::Tensor fused = branch.defined()
                           ? FusedAddModulatedLayerNorm(x, branch, gate, shift, scale, c.eps, dtype)
                           : FusedModulatedLayerNorm(x, shift, scale, c.eps, dtype);
    if (fused.defined()) return fused;
  }
  if (branch.defined()) AddGated(x, branch, gate);
  return at::layer_norm(x, {c.dim}, weight, bias, c.eps).to(dtype);
}

// Cross-attention and the FFN, over every row of the block's batch at once: no exchange is left
// to hide, and cuBLAS runs the GEMMs over all rows at its larger tiles (with Ulysses 2 on Wan 14B
// a micro-batch's 16,380 rows per GEMM ran ~5% slower per row than 32,760). `h`: the
// cross-attention's norm of x.
void FinishBlock(const WanConfig& c, at::Tensor& x, at::Tensor h, const at::Tensor& context,
                 const at::Tensor& context_img, const Modulation& modulation, const WeightSet& w,
                 const ParallelContext& parallel, at::ScalarType dtype) {
  const std::vector<at::Tensor>& m = modulation.parts;
  h = AddThenModulatedNorm(c, x, CrossAttention(c, h, context, context_img, w, parallel),
                           /*gate=*/{}, m[3], m[4], dtype);
  const at::Tensor ffn = FeedForward(h, w);
  AddGated(x, ffn, m[5]);
}

// Two micro-batches when their exchanges can hide behind each other's compute
// (ParallelContext::interleave_micro_batches): with Ulysses on an even batch.
int MicroBatches(const at::Tensor& x, const ParallelContext& parallel) {
  const bool interleave = parallel.interleave_micro_batches && parallel.overlap_exchanges &&
                          parallel.ulysses_degree > 1 && x.size(0) % 2 == 0;
  return interleave ? 2 : 1;
}

// One block; x is the fp32 residual stream (updated in place: each residual add reads the bf16
// branch output and the fp32 gate in one kernel), e0 the time projection. With two micro-batches
// A and B the self-attention interleaves: q and k of both handed over, A's v, B's v (A's value
// exchange runs meanwhile); A's attention (B's value exchange), B's attention (A's output goes
// back); A's output projection (B's output goes back), B's. Cross-attention and the FFN then run
// on both at once.
at::Tensor Block(const WanConfig& c, at::Tensor x, const at::Tensor& e0, const at::Tensor& context,
                 const at::Tensor& context_img, const RopeTable& rope, const WeightSet& w,
                 const ParallelContext& parallel, at::ScalarType dtype) {
  const int lanes = MicroBatches(x, parallel);
  const Modulation modulation = Modulate(w.Get("modulation"), e0);
  // Declared before the micro-batches: it joins after their attentions are gone.
  std::unique_ptr<SideStream> shared;
  if (lanes > 1) shared = std::make_unique<SideStream>(x);
  std::vector<MicroBatch> parts(lanes);
  for (int lane = 0; lane < lanes; ++lane) {
    MicroBatch& mb = parts[lane];
    mb.x = LaneRows(x, lane, lanes);
    mb.gate = LaneRows(modulation.parts[2], lane, lanes);
    mb.attention = std::make_unique<SequenceAttention>(
        parallel, AttentionLane{.side = shared.get(), .index = lane, .count = lanes});
  }
  StartSelfAttention(
      c, ModulatedNorm(x, modulation.parts[0], modulation.parts[1], c.dim, c.eps, dtype), w, rope,
      parts);
  for (MicroBatch& mb : parts) mb.attention->StartOutput();
  at::Tensor cross_norm;
  if (lanes == 1) {  // the residual add in the cross-attention norm's pass
    cross_norm =
        CrossAttentionNorm(c, x, w, dtype, SelfAttentionOutput(parts[0], w), parts[0].gate);
  } else {
    for (MicroBatch& mb : parts) AddGated(mb.x, SelfAttentionOutput(mb, w), mb.gate);
    cross_norm = CrossAttentionNorm(c, x, w, dtype);
  }
  FinishBlock(c, x, cross_norm, context, context_img, modulation, w, parallel, dtype);
  return x;
}

at::Tensor Forward(const WanConfig& c, const WanInputs& in, const ParallelContext& parallel,
                   WeightProvider& provider) {
  const at::Device device = provider.device();
  const at::ScalarType dtype = provider.compute_dtype();
  const WeightSet& g = provider.globals();
  const int64_t batch = in.x.size(0);

  // Patch embedding: [B, C, F, H, W] -> [B, L, dim] tokens ordered frame, height, width.
  at::Tensor x = in.x;
  if (in.y.defined()) x = at::cat({x, in.y}, 1);
  x = x.to(device, dtype);
  x = at::conv3d(x, g.Get("patch_embedding.weight"), g.Get("patch_embedding.bias"),
                 {c.patch_t, c.patch_h, c.patch_w});
  const int64_t frames = x.size(2), height = x.size(3), width = x.size(4);
  x = x.flatten(2).transpose(1, 2).to(at::kFloat).contiguous();
  const int64_t tokens = x.size(1);

  // Time: e [B, dim] (or [B, L, dim] per token), e0 [B, 6, dim] (or [B, L, 6, dim]); fp32.
  at::Tensor t = in.t.to(at::kDouble).to(device);
  const bool per_token = t.dim() == 2;
  at::Tensor sinusoid = SinusoidalEmbedding(t.flatten(), c.freq_dim).to(at::kFloat);
  at::Tensor e = at::linear(at::silu(Linear(sinusoid, g, "time_embedding.0")),
                            g.Get("time_embedding.2.weight").to(at::kFloat),
                            g.Get("time_embedding.2.bias").to(at::kFloat));
  at::Tensor e0 = at::linear(at::silu(e), g.Get("time_projection.1.weight").to(at::kFloat),
                             g.Get("time_projection.1.bias").to(at::kFloat));
  // Sequence parallelism: from here on each rank holds its chunk of the (padded) tokens, and of
  // everything per token (TI2V's per-token time, the RoPE rows).
  ParallelContext sp = parallel;
  sp.valid_tokens = tokens;
  x = ShardSequence(x, 1, sp);
  if (per_token) {
    e = ShardSequence(e.view({batch, tokens, c.dim}), 1, sp);
    e0 = ShardSequence(e0.view({batch, tokens, 6, c.dim}), 1, sp);
  } else {
    e = e.view({batch, c.dim});
    e0 = e0.view({batch, 6, c.dim});
  }
  // TeaCache: whether this call runs the blocks or adds the branch's last residual.
  WanStepCache* cache = in.step_cache;
  bool reuse = false;
  if (cache != nullptr) {
    // TeaCache measures the change of the timestep modulation; MagCache follows its schedule.
    const bool measures = cache->policy->measures_change();
    TORCH_CHECK(!measures || !per_token, "TeaCache needs one timestep per call, not one per token");
    const at::Tensor& modulated = cache->e0 ? e0 : e;
    double rel_l1 = 0;
    const bool comparable =
        !measures || (cache->previous.defined() && cache->previous.sizes() == modulated.sizes());
    if (measures && comparable) {
      rel_l1 = ((modulated - cache->previous).abs().mean() / cache->previous.abs().mean())
                   .item<double>();
    }
    reuse = cache->ReuseFor(x, rel_l1, comparable);
    if (measures) cache->previous = modulated.clone();
  }

  // Text: zero-padded to text_len, then the text MLP.
  at::Tensor context = in.context.to(device, dtype);
  if (context.size(1) < c.text_len) {
    context = at::constant_pad_nd(context, {0, 0, 0, c.text_len - context.size(1)});
  }
  context = Linear(at::gelu(Linear(context, g, "text_embedding.0"), "tanh"), g, "text_embedding.2");

  at::Tensor context_img;
  if (c.i2v()) {
    at::Tensor f = in.clip_fea.to(device, at::kFloat);
    if (c.flf_pos_tokens > 0) {
      // FLF2V: the start and end images' tokens get learned positions (ComfyUI's MLPProj:
      // tokens past the table are dropped, a start image alone gets the first half).
      const int64_t n = std::min(f.size(1), c.flf_pos_tokens);
      f = f.narrow(1, 0, n) + g.Get("img_emb.emb_pos").narrow(1, 0, n).to(at::kFloat);
    }
    f = at::layer_norm(f, {c.image_dim}, g.Get("img_emb.proj.0.weight").to(at::kFloat),
                       g.Get("img_emb.proj.0.bias").to(at::kFloat), 1e-5)
            .to(dtype);
    f = Linear(at::gelu(Linear(f, g, "img_emb.proj.1")), g, "img_emb.proj.3");
    context_img =
        at::layer_norm(f.to(at::kFloat), {c.dim}, g.Get("img_emb.proj.4.weight").to(at::kFloat),
                       g.Get("img_emb.proj.4.bias").to(at::kFloat), 1e-5)
            .to(dtype);
  }

  RopeTable rope = MakeRopeTable(frames, height, width, c.head_dim(), device);
  rope.rotation = ShardSequence(rope.rotation, 0, sp, /*pad_value=*/1.0);  // padding: no rotation

  // The blocks update the residual stream in place: a computed call that caches keeps a copy.
  const at::Tensor before_blocks = cache != nullptr && !reuse ? x.clone() : x;
  for (int i = 0; i < provider.num_blocks() && !reuse; ++i) {
    if (i + 1 < provider.num_blocks()) provider.Prefetch(i + 1);
    auto block = provider.Acquire(i);
    TORCH_CHECK(block.ok(), "weights for block ", i, ": ", std::string(block.status().message()));
    // Released when the block's work is enqueued, or when it throws: a provider's buffer stays
    // taken until then.
    const absl::Cleanup release = [&provider, i] { provider.Release(i); };
    x = Block(c, x, e0, context, context_img, rope, **block, sp, dtype);
  }
  if (reuse) {
    x = x + cache->residual;
  } else if (cache != nullptr) {
    cache->Keep(before_blocks, x);
  }

  // Head in fp32: shift/scale from e (not e0), no gate.
  Modulation m = Modulate(g.Get("head.modulation"), per_token ? e.unsqueeze(2) : e.unsqueeze(1));
  at::Tensor h = PlainLayerNorm(x, c.dim, c.eps) * (1 + m.parts[1]) + m.parts[0];
  at::Tensor out = at::linear(h, g.Get("head.head.weight").to(at::kFloat),
                              g.Get("head.head.bias").to(at::kFloat));
  // The head is per token, so the chunks are gathered after it rather than before: the same
  // result for out_channels * patch (64) values per token instead of dim (1536-5120).
  out = GatherSequence(out, 1, tokens, sp);

  // Unpatchify: per token (p_t, p_h, p_w, C), channel fastest.
  out = out.view({batch, frames, height, width, c.patch_t, c.patch_h, c.patch_w, c.out_channels});
  out = out.permute({0, 7, 1, 4, 2, 5, 3, 6})
            .reshape(
                {batch, c.out_channels, frames * c.patch_t, height * c.patch_h, width * c.patch_w});
  return out;
}

}  // namespace

at::Tensor SinusoidalEmbedding(const at::Tensor& t, int64_t freq_dim) {
  const int64_t half = freq_dim / 2;
  at::Tensor exponent =
      at::arange(half, t.options().dtype(at::kDouble)) / static_cast<double>(half);
  at::Tensor inv_freq = at::pow(10000.0, -exponent);
  at::Tensor angles = at::outer(t.to(at::kDouble), inv_freq);
  return at::cat({at::cos(angles), at::sin(angles)}, 1);
}

bool TextsBatchExactly(const WanConfig& config, int64_t first_tokens, int64_t second_tokens) {
  return std::max(first_tokens, config.text_len) == std::max(second_tokens, config.text_len);
}

WanInputs BatchInputs(const WanInputs& first, const WanInputs& second) {
  WanInputs batch;
  batch.x = JoinRows(first.x, second.x);
  batch.t = JoinRows(PerSample(first.t, first.x), PerSample(second.t, second.x));
  at::Tensor a = first.context, b = second.context;
  if (a.defined() && b.defined() && a.dim() == 3 && b.dim() == 3 && a.size(1) != b.size(1)) {
    const int64_t length = std::max(a.size(1), b.size(1));
    a = at::constant_pad_nd(a, {0, 0, 0, length - a.size(1)});
    b = at::constant_pad_nd(b, {0, 0, 0, length - b.size(1)});
  }
  batch.context = JoinRows(a, b);
  batch.clip_fea = JoinRows(first.clip_fea, second.clip_fea);
  batch.y = JoinRows(first.y, second.y);
  return batch;
}

bool WanKeepsFp32(const std::string& name) {
  return name == "head.modulation" || name.starts_with("time_embedding.") ||
         (name.starts_with("blocks.") && name.ends_with(".modulation"));
}

absl::Status ValidateWanInputs(const WanConfig& c, const WanInputs& in) {
  auto bad = [](const std::string& field, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
  };
  if (!in.x.defined() || in.x.dim() != 5)
    return bad("x", "must be [B, C, F, H, W], is " + Shape(in.x));
  const int64_t batch = in.x.size(0);
  if (batch < 1 || batch > kMaxBatch)
    return bad("x", absl::StrCat("batch ", batch, " outside [1, ", kMaxBatch, "]"));
  int64_t channels = in.x.size(1);
  if (in.y.defined()) {
    if (!c.i2v()) return bad("y", "only image-to-video models take y");
    if (in.y.dim() != 5 || in.y.size(0) != batch ||
        in.y.sizes().slice(2) != in.x.sizes().slice(2)) {
      return bad("y", absl::StrCat("must be [B, C', F, H, W] matching x ", Shape(in.x), ", is ",
                                   Shape(in.y)));
    }
    channels += in.y.size(1);
  }
  if (channels != c.in_channels) {
    return bad("x", absl::StrCat("has ", channels, " channels", in.y.defined() ? " with y" : "",
                                 "; ", c.name, " takes ", c.in_channels));
  }
  const int64_t f = in.x.size(2), h = in.x.size(3), w = in.x.size(4);
  if (f < 1 || h < 1 || w < 1 || f % c.patch_t || h % c.patch_h || w % c.patch_w) {
    return bad("x", absl::StrCat("frames/height/width ", f, "x", h, "x", w,
                                 " must be positive multiples of the patch ", c.patch_t, "x",
                                 c.patch_h, "x", c.patch_w));
  }
  const int64_t tokens = (f / c.patch_t) * (h / c.patch_h) * (w / c.patch_w);
  if (tokens > kMaxTokens) {
    return bad("x", absl::StrCat(tokens, " tokens exceed the limit of ", kMaxTokens));
  }
  if (!in.t.defined()) return bad("t", "missing");
  if (in.t.dim() == 1) {
    if (in.t.size(0) != batch)
      return bad("t", absl::StrCat("must be [", batch, "], is ", Shape(in.t)));
  } else if (in.t.dim() == 2) {
    if (!c.per_token_timesteps()) return bad("t", "per-token timesteps are for Wan 2.2 TI2V only");
    if (in.t.size(0) != batch || in.t.size(1) != tokens) {
      return bad("t", absl::StrCat("must be [", batch, ", ", tokens, "] (one per token), is ",
                                   Shape(in.t)));
    }
  } else {
    return bad("t", "must be [B] or [B, tokens], is " + Shape(in.t));
  }
  if (!in.context.defined() || in.context.dim() != 3 || in.context.size(0) != batch ||
      in.context.size(2) != c.text_dim || in.context.size(1) < 1 ||
      in.context.size(1) > WanConfig::kMaxTextTokens) {
    return bad("context", absl::StrCat("must be [", batch, ", 1..", WanConfig::kMaxTextTokens, ", ",
                                       c.text_dim, "], is ", Shape(in.context)));
  }
  if (c.i2v()) {
    if (!in.clip_fea.defined() || in.clip_fea.dim() != 3 || in.clip_fea.size(0) != batch ||
        in.clip_fea.size(2) != c.image_dim || in.clip_fea.size(1) < 1 ||
        in.clip_fea.size(1) > 2 * c.image_tokens) {
      return bad("clip_fea", absl::StrCat("must be [", batch, ", ", c.image_tokens, ", ",
                                          c.image_dim, "], is ", Shape(in.clip_fea)));
    }
  } else if (in.clip_fea.defined()) {
    return bad("clip_fea", "only image-to-video models take CLIP features");
  }
  for (const auto& [name, tensor] :
       {std::pair{"x", &in.x}, std::pair{"context", &in.context}, std::pair{"t", &in.t}}) {
    if (!at::isfinite(*tensor).all().item<bool>()) return bad(name, "holds NaN or infinity");
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> WanForward(const WanConfig& config, const WanInputs& inputs,
                                      const ParallelContext& parallel, WeightProvider& weights) {
  if (auto status = ValidateWanInputs(config, inputs); !status.ok()) return status;
  if (weights.num_blocks() != config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("weights hold ", weights.num_blocks(),
                                                   " blocks; ", config.name, " has ",
                                                   config.num_layers));
  }
  try {
    c10::InferenceMode inference;
    return Forward(config, inputs, parallel, weights);
  } catch (const c10::OutOfMemoryError& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("wan forward: ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("wan forward: ", error.what_without_backtrace()));
  }
}

absl::Status WarmUpWanForward(const WanConfig& config, WanInputs inputs,
                              const ParallelContext& parallel, WeightProvider& weights) {
  if (weights.num_blocks() == 0) return absl::OkStatus();
  WanConfig one_block = config;
  one_block.num_layers = 1;
  BlockSubset first(weights, {0});
  inputs.step_cache = nullptr;
  auto out = WanForward(one_block, inputs, parallel, first);
  if (!out.ok()) return out.status();
  // One value read back waits for the device: the warm-up's time is its own, not the first step's.
  (void)out->flatten()[0].item<float>();
  return absl::OkStatus();
}

}  // namespace raylight::models::wan
