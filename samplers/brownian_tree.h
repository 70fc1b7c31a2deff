// torchsde's BrownianTree as ComfyUI's SDE samplers use it (BrownianTreeNoiseSampler: a CPU tree
// over [sigma_min, sigma_max] seeded with the job's seed), reproduced bit for bit: the same
// dyadic tree of intervals (torchsde's "halfway tree" at tol 1e-6, times rounded to 6 decimals),
// each split seeded by NumPy's SeedSequence(seed, spawn_key=(key, depth), pool_size=24), each
// child's increment drawn by the Brownian bridge from its parent's with torch's CPU generator,
// the same float32 arithmetic in the same order. So dpmpp_sde, dpmpp_2m_sde and dpmpp_3m_sde give
// ComfyUI's latent for the same seed.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

namespace raylight::samplers {

class BrownianTree {
 public:
  // A Brownian motion of `like`'s shape and dtype over [t0, t1] (t0 < t1), W(t0) = 0.
  BrownianTree(const at::Tensor& like, uint64_t seed, double t0, double t1);
  ~BrownianTree();
  BrownianTree(const BrownianTree&) = delete;
  BrownianTree& operator=(const BrownianTree&) = delete;

  // W(tb) - W(ta) for ta <= tb, clamped to [t0, t1] as torchsde clamps (on the CPU).
  at::Tensor Increment(double ta, double tb);

 private:
  struct Node;
  Node* Split(Node* node, double midway);
  void SplitExact(Node* node, double midway);
  void Locate(Node* node, double ta, double tb, std::vector<Node*>& out);
  const at::Tensor& W(Node* node);
  at::Tensor Normal(uint32_t seed) const;

  std::vector<int64_t> sizes_;
  at::ScalarType dtype_;
  uint64_t seed_;
  std::vector<std::unique_ptr<Node>> nodes_;
  Node* top_ = nullptr;
  Node* last_ = nullptr;  // where the previous query ended: the next search starts there
  at::Tensor top_w_;
  // Recent increments (torchsde's LRU of 45): recomputing one is deterministic, so the cache
  // only saves work; it bounds the host memory to 45 latents.
  std::list<Node*> recent_;
  std::unordered_map<Node*, std::pair<at::Tensor, std::list<Node*>::iterator>> cache_;
};

}  // namespace raylight::samplers
