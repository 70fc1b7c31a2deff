#include "samplers/brownian_tree.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "samplers/seed_sequence.h"

namespace raylight::samplers {
namespace {

// torchsde's tree: tol 1e-6 (times rounded to 6 decimals), SeedSequence pool of 24 words.
constexpr int kDecimals = 6;
constexpr int kPoolSize = 24;
constexpr size_t kCacheSize = 45;

// Python's round(x, 6): the correctly rounded 6-decimal value, read back. glibc's printf rounds
// the exact binary value (ties to even), as CPython's dtoa does.
double Round(double x) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", kDecimals, x);
  return std::strtod(text, nullptr);
}

}  // namespace

struct BrownianTree::Node {
  double start = 0, end = 0;
  Node* parent = nullptr;
  bool is_left = false;
  bool split = false;
  double midway = 0;
  Node* left = nullptr;
  Node* right = nullptr;
  uint64_t spawn_key = 0;
  uint64_t depth = 0;
  uint32_t w_seed = 0;
};

BrownianTree::BrownianTree(const at::Tensor& like, uint64_t seed, double t0, double t1)
    : sizes_(like.sizes().vec()), dtype_(like.scalar_type()), seed_(seed) {
  nodes_.push_back(std::make_unique<Node>());
  top_ = last_ = nodes_.back().get();
  top_->start = Round(t0);
  top_->end = Round(t1);
  const std::vector<uint32_t> seeds = SeedSequenceState(seed, {}, kPoolSize, 3);
  top_w_ = Normal(seeds[0]) * std::sqrt(t1 - t0);  // the unrounded times, as torchsde
}

BrownianTree::~BrownianTree() = default;

at::Tensor BrownianTree::Normal(uint32_t seed) const {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(sizes_, generator, at::TensorOptions().dtype(dtype_));
}

void BrownianTree::SplitExact(Node* node, double midway) {
  node->split = true;
  node->midway = Round(midway);
  if (node->parent != nullptr) {
    node->spawn_key = 2 * node->parent->spawn_key + (node->is_left ? 0 : 1);
    node->depth = node->parent->depth + 1;
  }
  node->w_seed = SeedSequenceState(seed_, {node->spawn_key, node->depth}, kPoolSize, 4)[0];
  for (bool is_left : {true, false}) {
    nodes_.push_back(std::make_unique<Node>());
    Node* child = nodes_.back().get();
    // The children's edges are rounded from the unrounded midway, as torchsde's constructor.
    child->start = Round(is_left ? node->start : midway);
    child->end = Round(is_left ? midway : node->end);
    child->parent = node;
    child->is_left = is_left;
    (is_left ? node->left : node->right) = child;
  }
}

// torchsde's halfway tree: split at the dyadic midpoint, then again in the half holding
// `midway`, until a midpoint is `midway`.
BrownianTree::Node* BrownianTree::Split(Node* node, double midway) {
  while (true) {
    SplitExact(node, 0.5 * (node->end + node->start));
    if (midway > node->midway) {
      node = node->right;
    } else if (midway < node->midway) {
      node = node->left;
    } else {
      return node;
    }
  }
}

void BrownianTree::Locate(Node* node, double ta, double tb, std::vector<Node*>& out) {
  while (true) {
    if (ta < node->start || tb > node->end) {
      node = node->parent;
    } else if (ta == node->start && tb == node->end) {
      out.push_back(node);
      return;
    } else if (!node->split) {
      Split(node, ta == node->start ? tb : ta);
      node = ta == node->start ? node->left : node->right;
    } else if (tb <= node->midway) {
      node = node->left;
    } else if (ta >= node->midway) {
      node = node->right;
    } else {
      Locate(node->left, ta, node->midway, out);
      ta = node->midway;
      node = node->right;
    }
  }
}

const at::Tensor& BrownianTree::W(Node* node) {
  if (node == top_) return top_w_;
  if (auto it = cache_.find(node); it != cache_.end()) {
    recent_.splice(recent_.end(), recent_, it->second.second);
    return it->second.first;
  }
  const Node* parent = node->parent;
  const at::Tensor parent_w = W(node->parent);
  // The Brownian bridge in torchsde's float arithmetic: each Python float multiplies the float32
  // tensor as a float32 scalar, left to right.
  const double h_reciprocal = 1 / (parent->end - parent->start);
  const double left_diff = parent->midway - parent->start;
  const double right_diff = parent->end - parent->midway;
  const at::Tensor mean = parent_w * left_diff * h_reciprocal;
  const double variance = left_diff * right_diff * h_reciprocal;
  const at::Tensor left_w = mean + Normal(parent->w_seed) * std::sqrt(variance);
  at::Tensor w = node->is_left ? left_w : parent_w - left_w;
  if (cache_.size() >= kCacheSize) {
    cache_.erase(recent_.front());
    recent_.pop_front();
  }
  recent_.push_back(node);
  return cache_.emplace(node, std::make_pair(std::move(w), std::prev(recent_.end())))
      .first->second.first;
}

at::Tensor BrownianTree::Increment(double ta, double tb) {
  ta = std::min(std::max(ta, top_->start), top_->end);
  tb = std::min(std::max(tb, top_->start), top_->end);
  // torchsde never ends a search for two times that round to one (ComfyUI never asks for one).
  if (ta == tb || Round(ta) == Round(tb)) return at::zeros(sizes_, at::TensorOptions(dtype_));
  std::vector<Node*> intervals;
  Locate(last_, Round(ta), Round(tb), intervals);
  last_ = intervals.back();
  at::Tensor w = W(intervals.front());
  for (size_t i = 1; i < intervals.size(); ++i) w = w + W(intervals[i]);
  return w;
}

}  // namespace raylight::samplers
