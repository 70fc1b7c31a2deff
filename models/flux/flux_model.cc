#include "models/flux/flux_model.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/attention.h"
#include "models/core/batch_rows.h"
#include "models/core/block_subset.h"
#include "models/core/fp8_linear.h"
#include "models/core/rotary.h"
#include "models/core/sequence_parallel.h"

namespace raylight::models::flux {
namespace {

constexpr int64_t kMaxTokens = int64_t{1} << 20;
constexpr int64_t kMaxBatch = 64;
constexpr double kEps = 1e-6;

std::string Shape(const at::Tensor& t) {
  return t.defined() ? absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]") : "undefined";
}

at::Tensor Linear(const at::Tensor& x, const WeightSet& w, const std::string& name) {
  return ModuleLinear(x, w, name);  // fp8 compute's weights too
}

// A projection BFL fuses (flux_keys.h): one GEMM over the fused matrix, split into the parts, or
// (diffusers' spelling) one GEMM per part, all reading one input (under fp8 compute quantised
// once: LinearInput).
std::vector<at::Tensor> Project(const LinearInput& x, const WeightSet& w, const std::string& name,
                                const std::vector<std::pair<std::string, int64_t>>& parts) {
  std::vector<at::Tensor> out;
  if (w.Has(name + ".weight")) {
    std::vector<int64_t> widths;
    for (const auto& part : parts) widths.push_back(part.second);
    for (const at::Tensor& piece : at::split_with_sizes(ModuleLinear(x, w, name), widths, -1)) {
      out.push_back(piece);
    }
    return out;
  }
  for (const auto& part : parts) out.push_back(ModuleLinear(x, w, name + "." + part.first));
  return out;
}

// MLPEmbedder: out_layer(silu(in_layer(x))).
at::Tensor Embed(const at::Tensor& x, const WeightSet& g, const std::string& name) {
  return Linear(at::silu(Linear(x, g, name + ".in_layer")), g, name + ".out_layer");
}

// Modulation(vec): `count` vectors [B, 1, hidden] in fp32 (shift, scale, gate, ...).
std::vector<at::Tensor> Modulate(const at::Tensor& silu_vec, const WeightSet& w,
                                 const std::string& name, int64_t count) {
  at::Tensor table = Linear(silu_vec, w, name).to(at::kFloat).unsqueeze(1);  // [B, 1, n * hidden]
  return table.chunk(count, -1);
}

// LayerNorm without affine (eps 1e-6) then (1 + scale) * x + shift, computed in fp32 and written
// once in `dtype` (one pass after the norm instead of a fp32 result and a cast).
at::Tensor ModulatedNorm(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
                         at::ScalarType dtype) {
  const at::Tensor normed = at::layer_norm(x.to(at::kFloat), {x.size(-1)}, {}, {}, kEps);
  at::Tensor out = at::empty(normed.sizes(), normed.options().dtype(dtype));
  at::addcmul_out(out, shift, normed, 1 + scale);
  return out;
}

// q or k [B, n, H, D] through the block's RMSNorm over D (the scale in the compute dtype).
at::Tensor HeadNorm(const at::Tensor& x, const WeightSet& w, const std::string& name) {
  return at::rms_norm(x, {x.size(-1)}, w.Get(name), kEps);
}

// The block MLP's activation on its input projection: GELU (tanh), or Flux 2's SwiGLU (silu of
// the first half times the second).
at::Tensor MlpActivation(const FluxConfig& c, const at::Tensor& projected) {
  if (!c.swiglu) return at::gelu(projected, "tanh");
  const std::vector<at::Tensor> halves = projected.chunk(2, -1);
  return at::silu(halves[0]) * halves[1];
}

// The same activation as the MLP's output linear reads it: under fp8 compute the GELU is computed
// in the pass that quantises its result (LinearInput); SwiGLU runs ahead of it.
LinearInput MlpInput(const FluxConfig& c, const at::Tensor& projected) {
  if (!c.swiglu) return LinearInput(projected, Fp8QuantActivation::kGeluTanh);
  return LinearInput(MlpActivation(c, projected));
}

struct HeadsQkv {
  at::Tensor q, k, v;  // [B, n, H, D]
};

HeadsQkv Heads(const std::vector<at::Tensor>& qkv, const WeightSet& w, const std::string& norm,
               int64_t heads) {
  HeadsQkv out;
  out.q = HeadNorm(qkv[0].unflatten(-1, {heads, -1}), w, norm + ".query_norm.scale");
  out.k = HeadNorm(qkv[1].unflatten(-1, {heads, -1}), w, norm + ".key_norm.scale");
  out.v = qkv[2].unflatten(-1, {heads, -1});
  return out;
}

// Joint attention over this rank's rows [text; image] (each part may be empty), RoPE applied.
at::Tensor JointAttention(const std::vector<HeadsQkv>& streams, const at::Tensor& rotation,
                          const ParallelContext& parallel) {
  std::vector<at::Tensor> q, k, v;
  for (const HeadsQkv& s : streams) {
    q.push_back(s.q);
    k.push_back(s.k);
    v.push_back(s.v);
  }
  // One stream (a single block, or a chunk of one stream's rows) needs no joining copy.
  auto joined = [](const std::vector<at::Tensor>& parts) {
    return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
  };
  const at::Tensor query = ApplyRotary(joined(q), rotation);
  const at::Tensor key = ApplyRotary(joined(k), rotation);
  return Attention(query, key, joined(v), parallel, AttentionKind::kSelf).flatten(-2);
}

// One double-stream block on this rank's rows: the first `text_rows` are text, the rest image.
// x is the fp32 residual stream, updated in place.
// `modulation(stream)`: the stream's 6 vectors (shift, scale, gate twice) for this block.
void DoubleBlock(const FluxConfig& c, at::Tensor& x, int64_t text_rows,
                 const std::function<std::vector<at::Tensor>(const std::string&)>& modulation,
                 const at::Tensor& rotation, const WeightSet& w, const ParallelContext& parallel,
                 at::ScalarType dtype) {
  struct Stream {
    std::string name;
    at::Tensor rows;  // a view of x
    std::vector<at::Tensor> mod;
    HeadsQkv qkv;
  };
  std::vector<Stream> streams;
  const int64_t image_rows = x.size(1) - text_rows;
  if (text_rows > 0) streams.push_back({"txt", x.narrow(1, 0, text_rows)});
  if (image_rows > 0) streams.push_back({"img", x.narrow(1, text_rows, image_rows)});
  std::vector<HeadsQkv> heads;
  const int64_t h = c.hidden;
  for (Stream& s : streams) {
    s.mod = modulation(s.name);
    const at::Tensor normed = ModulatedNorm(s.rows, s.mod[0], s.mod[1], dtype);
    s.qkv =
        Heads(Project(LinearInput(normed), w, s.name + "_attn.qkv", {{"q", h}, {"k", h}, {"v", h}}),
              w, s.name + "_attn.norm", c.num_heads);
    heads.push_back(s.qkv);
  }
  const at::Tensor attention = JointAttention(heads, rotation, parallel);
  int64_t row = 0;
  for (Stream& s : streams) {
    const at::Tensor out = attention.narrow(1, row, s.rows.size(1));
    row += s.rows.size(1);
    s.rows.addcmul_(Linear(out, w, s.name + "_attn.proj"), s.mod[2]);
    const at::Tensor normed = ModulatedNorm(s.rows, s.mod[3], s.mod[4], dtype);
    const at::Tensor mlp =
        ModuleLinear(MlpInput(c, Linear(normed, w, s.name + "_mlp.0")), w, s.name + "_mlp.2");
    s.rows.addcmul_(mlp, s.mod[5]);
  }
}

// One single-stream block over every row (x fp32, updated in place). BFL's fused linear1 runs as
// two GEMMs over its row blocks (q, k, v; the MLP's input), so that the MLP's activation reads a
// contiguous tensor (on a column slice of one fused output GELU runs 4.6x slower on an H200), and
// linear2 as two over its column blocks, accumulating, instead of joining the attention and the
// MLP into one copy first.
void SingleBlock(const FluxConfig& c, at::Tensor& x, const std::vector<at::Tensor>& mod,
                 const at::Tensor& rotation, const WeightSet& w, const ParallelContext& parallel,
                 at::ScalarType dtype) {
  const LinearInput normed(ModulatedNorm(x, mod[0], mod[1], dtype));  // quantised once
  const int64_t h = c.hidden;
  std::vector<at::Tensor> qkv;
  at::Tensor mlp;
  if (w.Has("linear1.weight")) {  // (no bias in Flux 2)
    const at::Tensor projected = ModuleLinear(normed, w, "linear1", 0, 3 * h);
    for (const at::Tensor& part : projected.split(h, -1)) qkv.push_back(part);
    mlp = ModuleLinear(normed, w, "linear1", 3 * h, c.mlp_in());
  } else {
    qkv = Project(normed, w, "linear1", {{"q", h}, {"k", h}, {"v", h}});
    mlp = ModuleLinear(normed, w, "linear1.mlp");
  }
  const at::Tensor attention =
      JointAttention({Heads(qkv, w, "norm", c.num_heads)}, rotation, parallel);
  const at::Tensor& weight = w.Get("linear2.weight");  // [hidden, hidden + mlp_hidden]
  at::Tensor out;
  if (weight.scalar_type() == at::kFloat8_e4m3fn) {
    // Two fp8 GEMMs over the columns of the attention and the MLP parts; each row's scale
    // holds for all of its columns. The activations are quantised apart, each per token (the
    // MLP's with its GELU in the same pass).
    const at::Tensor& scale = w.Get(Fp8ScaleName("linear2.weight"));
    out = Fp8Linear(attention, weight.narrow(1, 0, h), scale, w.Get("linear2.bias")) +
          Fp8Linear(MlpInput(c, mlp), weight.narrow(1, h, c.mlp_hidden), scale, at::Tensor());
  } else {
    out = at::linear(attention, weight.narrow(1, 0, h), w.Get("linear2.bias"));
    out.view({-1, h}).addmm_(MlpInput(c, mlp).Activated().reshape({-1, c.mlp_hidden}),
                             weight.narrow(1, h, c.mlp_hidden).t());
  }
  x.addcmul_(out, mod[2]);
}

// A latent as image tokens: odd sides padded circularly (ComfyUI's pad_to_patch_size), then
// [B, C, H, W] -> [B, rows * cols, C * 2 * 2] (channel, then the patch's row and column), with
// their position ids (index, row + row_offset, column + column_offset), float64 [rows * cols, 3].
struct Patches {
  at::Tensor tokens, ids;
  int64_t rows = 0, cols = 0;
};
// `centred`: the positions less rows / 2 and columns / 2 (Qwen-Image, as ComfyUI computes them;
// diffusers centres an odd count one lower).
Patches Patchify(const FluxConfig& c, const at::Tensor& latent, at::ScalarType dtype,
                 at::Device device, double index = 0, int64_t row_offset = 0,
                 int64_t column_offset = 0, bool centred = false) {
  at::Tensor x = latent.to(device, dtype);
  const int64_t pad_h = (c.patch - x.size(2) % c.patch) % c.patch;
  const int64_t pad_w = (c.patch - x.size(3) % c.patch) % c.patch;
  if (pad_h > 0 || pad_w > 0) x = at::pad(x, {0, pad_w, 0, pad_h}, "circular");
  Patches p;
  p.rows = x.size(2) / c.patch;
  p.cols = x.size(3) / c.patch;
  p.tokens = x.view({x.size(0), c.latent_channels, p.rows, c.patch, p.cols, c.patch})
                 .permute({0, 2, 4, 1, 3, 5})
                 .reshape({x.size(0), p.rows * p.cols, c.in_channels()});
  if (centred) {
    row_offset -= p.rows / 2;
    column_offset -= p.cols / 2;
  }
  const at::TensorOptions options = at::TensorOptions().dtype(at::kDouble).device(device);
  const at::Tensor r =
      (at::arange(p.rows, options) + row_offset).view({p.rows, 1}).expand({p.rows, p.cols});
  const at::Tensor col =
      (at::arange(p.cols, options) + column_offset).view({1, p.cols}).expand({p.rows, p.cols});
  std::vector<at::Tensor> axes = {at::full({p.rows, p.cols}, index, options), r, col};
  if (c.positions == RopePositions::kFlux2) axes.push_back(at::zeros({p.rows, p.cols}, options));
  p.ids = at::stack(axes, -1).view({p.rows * p.cols, -1});
  return p;
}

// Kontext's reference latents as more image tokens after the image's, as ComfyUI's Flux places
// them ("offset", its default): index 1, each reference beside the ones before it, to the right
// when taller than the space so far is wide, else below (offsets in pixels of the latent, rounded
// to patches).
// Qwen-Image-Edit's as ComfyUI's Qwen-Image places them ("index", its default): reference i at
// index i + 1, each centred on its own.
std::vector<Patches> ReferencePatches(const FluxConfig& c, const std::vector<at::Tensor>& refs,
                                      at::ScalarType dtype, at::Device device) {
  std::vector<Patches> out;
  if (c.positions == RopePositions::kQwenImage) {
    for (size_t i = 0; i < refs.size(); ++i) {
      out.push_back(Patchify(c, refs[i], dtype, device, static_cast<double>(i + 1), 0, 0, true));
    }
    return out;
  }
  int64_t h = 0, w = 0;
  for (const at::Tensor& ref : refs) {
    int64_t h_offset = 0, w_offset = 0;
    if (ref.size(2) + h > ref.size(3) + w) {
      w_offset = w;
    } else {
      h_offset = h;
    }
    h = std::max(h, ref.size(2) + h_offset);
    w = std::max(w, ref.size(3) + w_offset);
    const int64_t half = c.patch / 2;
    out.push_back(Patchify(c, ref, dtype, device, 1, (h_offset + half) / c.patch,
                           (w_offset + half) / c.patch));
  }
  return out;
}

// Chroma's modulation table [B, rows, hidden] (its "distilled guidance layer"): for each row r
// the embeddings of the timestep (16), the guidance (16) and r (32), through an MLP of residual
// RMSNorm'd layers, in the compute dtype as ComfyUI runs it. ComfyUI makes 344 rows whatever the
// block count (Chroma's 38 single and 19 double blocks need exactly that).
at::Tensor ChromaModulations(const FluxConfig& c, const FluxInputs& in, const WeightSet& g,
                             at::Device device, at::ScalarType dtype) {
  const int64_t batch = in.x.size(0);
  const at::Tensor guidance =
      in.guidance.defined() ? in.guidance.to(device) : at::zeros({batch}, in.t.options());
  const at::Tensor per_sample = at::cat({FluxTimestepEmbedding(in.t.to(device), 16),
                                         FluxTimestepEmbedding(PerSample(guidance, in.x), 16)},
                                        1);  // [B, 32]
  // Row r's embedding is of r x 1000, exact in fp32 (the references' x1000 of an integer).
  const at::Tensor index = FluxTimestepEmbedding(
      at::arange(c.modulation_rows, at::TensorOptions().device(device).dtype(at::kFloat)) * 1000.0,
      32, false, 1.0f);  // [rows, 32]
  at::Tensor x = at::cat({per_sample.unsqueeze(1).expand({batch, c.modulation_rows, 32}),
                          index.unsqueeze(0).expand({batch, c.modulation_rows, 32})},
                         -1)
                     .to(dtype);
  x = Linear(x, g, "distilled_guidance_layer.in_proj");
  for (int64_t i = 0; i < c.approximator_layers; ++i) {
    const std::string layer = absl::StrCat("distilled_guidance_layer.layers.", i);
    const at::Tensor normed = at::rms_norm(
        x, {x.size(-1)}, g.Get(absl::StrCat("distilled_guidance_layer.norms.", i, ".scale")), kEps);
    x = x + Embed(normed, g, layer);
  }
  return Linear(x, g, "distilled_guidance_layer.out_proj");
}

// The text tokens' position ids, float64 [tokens, 3]: Flux's all zero; Qwen-Image's counting
// up on every axis from past the centred image's half extent.
at::Tensor TextIds(const FluxConfig& c, int64_t tokens, int64_t rows, int64_t cols,
                   at::Device device) {
  const at::TensorOptions options = at::TensorOptions().dtype(at::kDouble).device(device);
  if (c.positions == RopePositions::kFlux) return at::zeros({tokens, 3}, options);
  if (c.positions == RopePositions::kFlux2) {
    return at::cat({at::zeros({tokens, 3}, options), at::arange(tokens, options).view({tokens, 1})},
                   1);
  }
  const int64_t start = std::max(rows / 2, cols / 2);
  return (at::arange(tokens, options) + start).view({tokens, 1}).expand({tokens, 3});
}

// TeaCache's measure on the Flux forward (TeaCache4FLUX): the relative L1 change of the first
// double block's modulated image input, (1 + scale) * LayerNorm(image) + shift, from the last
// call's: mean |m - m_prev| / mean |m_prev| over every row of the call's batch and of every rank
// (one all-reduce, so every rank of the sequence group takes the same decision). `image` is this
// rank's image rows (text rows and sequence padding excluded); `cache.previous` becomes this
// call's m.
struct ModulatedInputChange {
  double rel_l1 = 0;
  bool comparable = false;  // every rank had a previous input of this call's shape
};
ModulatedInputChange MeasureModulatedInput(const at::Tensor& image, const at::Tensor& shift,
                                           const at::Tensor& scale, ResidualCache& cache,
                                           const ParallelContext& sp) {
  const at::Tensor normed = at::layer_norm(image.to(at::kFloat), {image.size(-1)}, {}, {}, kEps);
  const at::Tensor modulated = at::addcmul(shift.to(at::kFloat), normed, 1 + scale.to(at::kFloat));
  const bool comparable = cache.previous.defined() && cache.previous.sizes() == modulated.sizes();
  // [sum |m - m_prev|, sum |m_prev|, ranks without a previous input], summed over the ranks.
  // In float32, which every backend reduces (a relative 1e-7 off the decision's sum).
  const at::Tensor none = at::zeros({}, modulated.options());
  at::Tensor sums =
      comparable
          ? at::stack({(modulated - cache.previous).abs().sum(), cache.previous.abs().sum(), none})
          : at::stack({none, none, none + 1});
  sums = SumOverSequence(sums, sp).to(at::kDouble).cpu();
  cache.previous = modulated;
  const double* value = sums.data_ptr<double>();
  if (value[2] > 0 || value[1] <= 0) return {};
  return {.rel_l1 = value[0] / value[1], .comparable = true};
}

at::Tensor Forward(const FluxConfig& c, const FluxInputs& in, const ParallelContext& parallel,
                   WeightProvider& provider) {
  const at::Device device = provider.device();
  const at::ScalarType dtype = provider.compute_dtype();
  const WeightSet& g = provider.globals();
  const int64_t batch = in.x.size(0);
  const int64_t height = in.x.size(2), width = in.x.size(3);

  // The image's tokens, then Kontext's reference images' (the prediction is the image's alone).
  const bool centred = c.positions == RopePositions::kQwenImage;
  const Patches patches = Patchify(c, in.x, dtype, device, 0, 0, 0, centred);
  const int64_t rows = patches.rows, cols = patches.cols;
  std::vector<at::Tensor> image_tokens = {patches.tokens}, image_ids = {patches.ids};
  for (const Patches& ref : ReferencePatches(c, in.references, dtype, device)) {
    image_tokens.push_back(ref.tokens);
    image_ids.push_back(ref.ids);
  }
  const at::Tensor image = Linear(at::cat(image_tokens, 1), g, "img_in");

  // The modulation: Flux's from one conditioning vector (time, guidance for dev, the pooled CLIP
  // vector) through each block's own linear; Chroma's every block's rows of one table.
  at::Tensor silu_vec, table;
  if (c.approximator_hidden > 0) {
    table = ChromaModulations(c, in, g, device, dtype);
  } else {
    at::Tensor vec = Embed(
        FluxTimestepEmbedding(in.t.to(device), 256, c.time_scaled_last).to(dtype), g, "time_in");
    if (c.guidance_embed) {
      vec = vec +
            Embed(FluxTimestepEmbedding(in.guidance.to(device), 256).to(dtype), g, "guidance_in");
    }
    if (c.vec_dim > 0) {
      const at::Tensor pooled = in.pooled.defined()
                                    ? in.pooled.narrow(1, 0, c.vec_dim).to(device, dtype)
                                    : at::zeros({batch, c.vec_dim}, image.options());
      vec = vec + Embed(pooled, g, "vector_in");
    }
    silu_vec = at::silu(vec);
  }
  // Flux 2's: one set for every block of a kind.
  std::vector<at::Tensor> shared_img, shared_txt, shared_single;
  if (c.shared_modulation) {
    shared_img = Modulate(silu_vec, g, "double_mod_img.lin", 6);
    shared_txt = Modulate(silu_vec, g, "double_mod_txt.lin", 6);
    shared_single = Modulate(silu_vec, g, "single_mod.lin", 3);
  }
  // `count` rows of Chroma's table from `row`, each [B, 1, hidden].
  auto rows_of = [&](int64_t row, int64_t count) {
    return table.narrow(1, row, count).to(at::kFloat).split(1, 1);
  };

  at::Tensor context = in.context.to(device, dtype);
  if (c.text_norm) context = at::rms_norm(context, {c.context_dim}, g.Get("txt_norm.scale"), kEps);
  const at::Tensor text = Linear(context, g, "txt_in");
  const int64_t text_tokens = text.size(1);
  const int64_t tokens = text_tokens + image.size(1);

  // The joint sequence [text; image], split across the ranks as one sequence.
  ParallelContext sp = parallel;
  sp.valid_tokens = tokens;
  at::Tensor joint = ShardSequence(at::cat({text, image}, 1).to(at::kFloat), 1, sp);
  // Position ids: the text's, then the image tokens'.
  image_ids.insert(image_ids.begin(), TextIds(c, text_tokens, rows, cols, device));
  at::Tensor rotation = RotationOf(AxisPositionAngles(at::cat(image_ids, 0), c.axes_dim, c.theta));
  rotation = ShardSequence(rotation, 0, sp, /*pad_value=*/1.0);  // padding: no rotation
  const int64_t chunk = joint.size(1);
  const int64_t text_rows = std::clamp<int64_t>(text_tokens - sp.sequence_rank() * chunk, 0, chunk);

  // A step cache: this call adds the residual the blocks added last time, or runs them and keeps
  // what they add (to the joint rows: the image rows' part is what the final layer reads).
  // MagCache decides here from its schedule; TeaCache once block 0's modulation is at hand.
  ResidualCache* cache = in.step_cache;
  const bool measures = cache != nullptr && cache->policy->measures_change();
  bool reuse = cache != nullptr && !measures && cache->ReuseFor(joint);
  at::Tensor before_blocks;  // taken once the call is known to run the blocks
  if (cache != nullptr && !measures && !reuse) before_blocks = joint.clone();
  // This rank's rows that are the sequence's (the last rank's padding is not).
  const int64_t valid_rows = std::clamp<int64_t>(tokens - sp.sequence_rank() * chunk, 0, chunk);
  for (int i = 0; i < provider.num_blocks() && !reuse; ++i) {
    // Measuring, block 0 is needed before the next one may be fetched: the call may end here.
    const bool decides_here = i == 0 && measures;
    if (!decides_here && i + 1 < provider.num_blocks()) provider.Prefetch(i + 1);
    auto block = provider.Acquire(i);
    TORCH_CHECK(block.ok(), "weights for block ", i, ": ", std::string(block.status().message()));
    const absl::Cleanup release = [&provider, i] { provider.Release(i); };
    std::vector<at::Tensor> measured_img;  // block 0's image modulation, once TeaCache read it
    auto modulation = [&](const std::string& stream) -> std::vector<at::Tensor> {
      if (stream == "img" && !measured_img.empty()) return measured_img;
      if (c.shared_modulation) return stream == "img" ? shared_img : shared_txt;
      if (!table.defined()) return Modulate(silu_vec, **block, stream + "_mod.lin", 6);
      // Chroma's table: the single blocks' 3 rows each, then the double blocks' image rows,
      // then their text rows, 6 each.
      const int64_t image_rows = 3 * c.depth_single + 6 * i;
      return rows_of(stream == "img" ? image_rows : image_rows + 6 * c.depth, 6);
    };
    if (decides_here) {
      measured_img = modulation("img");
      const ModulatedInputChange change = MeasureModulatedInput(
          joint.narrow(1, text_rows, std::max<int64_t>(valid_rows - text_rows, 0)), measured_img[0],
          measured_img[1], *cache, sp);
      reuse = cache->ReuseFor(joint, change.rel_l1, change.comparable);
      if (reuse) break;
      before_blocks = joint.clone();
      if (i + 1 < provider.num_blocks()) provider.Prefetch(i + 1);
    }
    if (i < c.depth) {
      DoubleBlock(c, joint, text_rows, modulation, rotation, **block, sp, dtype);
    } else {
      const int64_t single = i - c.depth;
      SingleBlock(c, joint,
                  c.shared_modulation ? shared_single
                  : table.defined()   ? rows_of(3 * single, 3)
                                      : Modulate(silu_vec, **block, "modulation.lin", 3),
                  rotation, **block, sp, dtype);
    }
  }
  if (reuse) joint = joint + cache->residual;

  if (!reuse && before_blocks.defined()) cache->Keep(before_blocks, joint);

  // Final layer: BFL stores (shift, scale), diffusers (scale, shift); Chroma's are its table's
  // last two rows (shift, scale).
  std::vector<at::Tensor> final;
  if (table.defined()) {
    final = rows_of(table.size(1) - 2, 2);
  } else if (g.Has("final_layer.adaLN_modulation.1.weight")) {
    final = Modulate(silu_vec, g, "final_layer.adaLN_modulation.1", 2);
  } else {
    final = Modulate(silu_vec, g, "final_layer.scale_shift", 2);
    std::swap(final[0], final[1]);
  }
  at::Tensor out = Linear(ModulatedNorm(joint, final[0], final[1], dtype), g, "final_layer.linear");
  out = GatherSequence(out.to(at::kFloat), 1, tokens, sp).narrow(1, text_tokens, rows * cols);

  // Back to the latent: [B, rows * cols, C * 2 * 2] -> [B, C, H, W], the padding cut off.
  out = out.view({batch, rows, cols, c.latent_channels, c.patch, c.patch})
            .permute({0, 3, 1, 4, 2, 5})
            .reshape({batch, c.latent_channels, rows * c.patch, cols * c.patch});
  return out.narrow(2, 0, height).narrow(3, 0, width).contiguous();
}

}  // namespace

at::Tensor FluxTimestepEmbedding(const at::Tensor& t, int64_t dim, bool scale_last,
                                 float time_factor) {
  const int64_t half = dim / 2;
  const at::Tensor time = t.to(at::kFloat);
  const at::Tensor freqs =
      at::exp(-std::log(10000.0) * at::arange(half, time.options()) / static_cast<double>(half));
  const at::Tensor args = scale_last ? time.unsqueeze(1) * freqs.unsqueeze(0) * time_factor
                                     : (time * time_factor).unsqueeze(1) * freqs.unsqueeze(0);
  return at::cat({at::cos(args), at::sin(args)}, -1);
}

bool BatchesExactly(const FluxInputs& first, const FluxInputs& second) {
  if (first.context.size(1) != second.context.size(1) ||
      first.references.size() != second.references.size()) {
    return false;
  }
  for (size_t i = 0; i < first.references.size(); ++i) {
    if (first.references[i].sizes().slice(1) != second.references[i].sizes().slice(1)) return false;
  }
  return true;
}

FluxInputs BatchInputs(const FluxInputs& first, const FluxInputs& second) {
  FluxInputs batch;
  batch.x = JoinRows(first.x, second.x);
  batch.t = JoinRows(PerSample(first.t, first.x), PerSample(second.t, second.x));
  batch.context = JoinRows(first.context, second.context);
  batch.guidance =
      JoinRows(PerSample(first.guidance, first.x), PerSample(second.guidance, second.x));
  for (size_t i = 0; i < std::min(first.references.size(), second.references.size()); ++i) {
    batch.references.push_back(JoinRows(first.references[i], second.references[i]));
  }
  if (first.pooled.defined() || second.pooled.defined()) {
    auto or_zeros = [](const at::Tensor& p, const at::Tensor& other, int64_t rows) {
      return p.defined() ? p : at::zeros({rows, other.size(1)}, other.options());
    };
    const at::Tensor& known = first.pooled.defined() ? first.pooled : second.pooled;
    batch.pooled = at::cat({or_zeros(first.pooled, known, first.x.size(0)),
                            or_zeros(second.pooled, known, second.x.size(0))},
                           0);
  }
  return batch;
}

absl::Status ValidateFluxInputs(const FluxConfig& c, const FluxInputs& in) {
  auto bad = [](const std::string& field, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
  };
  if (!in.x.defined() || in.x.dim() != 4)
    return bad("x", "must be [B, C, H, W], is " + Shape(in.x));
  const int64_t batch = in.x.size(0);
  if (batch < 1 || batch > kMaxBatch) {
    return bad("x", absl::StrCat("batch ", batch, " outside [1, ", kMaxBatch, "]"));
  }
  if (in.x.size(1) != c.latent_channels) {
    return bad("x", absl::StrCat("has ", in.x.size(1), " channels; ", c.name, " takes ",
                                 c.latent_channels));
  }
  if (in.x.size(2) < 1 || in.x.size(3) < 1) return bad("x", "height and width must be positive");
  if (c.Tokens(in.x.size(2), in.x.size(3)) > kMaxTokens) {
    return bad("x", absl::StrCat(c.Tokens(in.x.size(2), in.x.size(3)),
                                 " image tokens exceed the limit of ", kMaxTokens));
  }
  auto per_sample = [&](const char* field, const at::Tensor& t) -> absl::Status {
    if (!t.defined() || t.dim() != 1 || t.size(0) != batch) {
      return bad(field, absl::StrCat("must be [", batch, "], is ", Shape(t)));
    }
    return absl::OkStatus();
  };
  if (auto status = per_sample("t", in.t); !status.ok()) return status;
  if (c.guidance_embed) {
    if (!in.guidance.defined()) {
      return bad("guidance",
                 absl::StrCat(c.name, " takes a distilled guidance strength per sample"));
    }
    if (auto status = per_sample("guidance", in.guidance); !status.ok()) return status;
  }
  if (!in.context.defined() || in.context.dim() != 3 || in.context.size(0) != batch ||
      in.context.size(2) != c.context_dim || in.context.size(1) < 1 ||
      in.context.size(1) > FluxConfig::kMaxTextTokens) {
    return bad("context", absl::StrCat("must be [", batch, ", 1..", FluxConfig::kMaxTextTokens,
                                       ", ", c.context_dim, "], is ", Shape(in.context)));
  }
  if (in.pooled.defined() &&
      (in.pooled.dim() != 2 || in.pooled.size(0) != batch || in.pooled.size(1) < c.vec_dim)) {
    return bad("pooled",
               absl::StrCat("must be [", batch, ", ", c.vec_dim, "], is ", Shape(in.pooled)));
  }
  constexpr size_t kMaxReferences = 8;
  if (in.references.size() > kMaxReferences) {
    return bad("references",
               absl::StrCat(in.references.size(), " given; at most ", kMaxReferences));
  }
  int64_t reference_tokens = 0;
  for (const at::Tensor& ref : in.references) {
    if (!ref.defined() || ref.dim() != 4 || ref.size(0) != batch ||
        ref.size(1) != c.latent_channels || ref.size(2) < 1 || ref.size(3) < 1) {
      return bad("references", absl::StrCat("each must be [", batch, ", ", c.latent_channels,
                                            ", h, w], one is ", Shape(ref)));
    }
    if (!at::isfinite(ref).all().item<bool>()) return bad("references", "hold NaN or infinity");
    reference_tokens += c.Tokens(ref.size(2), ref.size(3));
  }
  if (c.Tokens(in.x.size(2), in.x.size(3)) + reference_tokens > kMaxTokens) {
    return bad("references",
               absl::StrCat("the image's and the references' tokens exceed ", kMaxTokens));
  }
  std::vector<std::pair<const char*, const at::Tensor*>> finite = {
      {"x", &in.x}, {"t", &in.t}, {"context", &in.context}};
  if (in.pooled.defined()) finite.push_back({"pooled", &in.pooled});
  if (c.guidance_embed) finite.push_back({"guidance", &in.guidance});
  for (const auto& [name, tensor] : finite) {
    if (!at::isfinite(*tensor).all().item<bool>()) return bad(name, "holds NaN or infinity");
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> FluxForward(const FluxConfig& config, const FluxInputs& inputs,
                                       const ParallelContext& parallel, WeightProvider& weights) {
  if (auto status = ValidateFluxInputs(config, inputs); !status.ok()) return status;
  if (weights.num_blocks() != config.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat("weights hold ", weights.num_blocks(),
                                                   " blocks; ", config.name, " has ",
                                                   config.num_blocks()));
  }
  try {
    c10::InferenceMode inference;
    return Forward(config, inputs, parallel, weights);
  } catch (const c10::OutOfMemoryError& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("flux forward: ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("flux forward: ", error.what_without_backtrace()));
  }
}

absl::Status WarmUpFluxForward(const FluxConfig& config, FluxInputs inputs,
                               const ParallelContext& parallel, WeightProvider& weights) {
  FluxConfig few = config;
  few.depth = std::min<int64_t>(config.depth, 1);
  few.depth_single = std::min<int64_t>(config.depth_single, 1);
  std::vector<int> blocks;
  if (few.depth > 0) blocks.push_back(0);
  if (few.depth_single > 0) blocks.push_back(static_cast<int>(config.depth));
  if (blocks.empty()) return absl::OkStatus();
  BlockSubset subset(weights, std::move(blocks));
  inputs.step_cache = nullptr;
  auto out = FluxForward(few, inputs, parallel, subset);
  if (!out.ok()) return out.status();
  // One value read back waits for the device: the warm-up's time is its own, not the first step's.
  (void)out->flatten()[0].item<float>();
  return absl::OkStatus();
}

}  // namespace raylight::models::flux
