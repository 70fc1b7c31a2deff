#include "samplers/seed_sequence.h"

namespace raylight::samplers {
namespace {

// NumPy's constants (numpy/random/bit_generator.pyx).
constexpr uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875;
constexpr uint32_t kInitB = 0x8b51f9dd, kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd, kMixMultR = 0x4973f715;
constexpr int kXShift = 16;

void AppendWords(uint64_t value, std::vector<uint32_t>& out) {
  if (value == 0) {
    out.push_back(0);
    return;
  }
  for (; value > 0; value >>= 32) out.push_back(static_cast<uint32_t>(value));
}

class HashMix {
 public:
  uint32_t operator()(uint32_t value) {
    value ^= hash_;
    hash_ *= kMultA;
    value *= hash_;
    return value ^ (value >> kXShift);
  }

 private:
  uint32_t hash_ = kInitA;
};

uint32_t Mix(uint32_t x, uint32_t y) {
  uint32_t result = kMixMultL * x - kMixMultR * y;
  return result ^ (result >> kXShift);
}

}  // namespace

std::vector<uint32_t> SeedSequenceState(uint64_t entropy, const std::vector<uint64_t>& spawn_key,
                                        int pool_size, int words) {
  std::vector<uint32_t> assembled;
  AppendWords(entropy, assembled);
  if (!spawn_key.empty() && static_cast<int>(assembled.size()) < pool_size) {
    assembled.resize(static_cast<size_t>(pool_size), 0);
  }
  for (uint64_t key : spawn_key) AppendWords(key, assembled);

  HashMix hash;
  std::vector<uint32_t> pool(static_cast<size_t>(pool_size));
  for (size_t i = 0; i < pool.size(); ++i) {
    pool[i] = hash(i < assembled.size() ? assembled[i] : 0);
  }
  for (size_t src = 0; src < pool.size(); ++src) {
    for (size_t dst = 0; dst < pool.size(); ++dst) {
      if (src != dst) pool[dst] = Mix(pool[dst], hash(pool[src]));
    }
  }
  for (size_t src = pool.size(); src < assembled.size(); ++src) {
    for (size_t dst = 0; dst < pool.size(); ++dst) pool[dst] = Mix(pool[dst], hash(assembled[src]));
  }

  std::vector<uint32_t> state(static_cast<size_t>(words));
  uint32_t hash_const = kInitB;
  for (size_t i = 0; i < state.size(); ++i) {
    uint32_t value = pool[i % pool.size()];
    value ^= hash_const;
    hash_const *= kMultB;
    value *= hash_const;
    state[i] = value ^ (value >> kXShift);
  }
  return state;
}

}  // namespace raylight::samplers
