// NumPy's SeedSequence (numpy.random.SeedSequence, O'Neill's seed_seq with hash mixing): the
// entropy pool torchsde seeds its Brownian trees from, reproduced word for word so that the
// SDE samplers draw ComfyUI's Brownian noise. Torch-free.
#pragma once

#include <cstdint>
#include <vector>

namespace raylight::samplers {

// SeedSequence(entropy, spawn_key, pool_size).generate_state(words) as uint32 words. `entropy`
// and each spawn-key element are non-negative integers, split into 32-bit words low first (NumPy's
// coercion of Python ints); a spawn key pads the entropy with zero words to the pool size first
// (NumPy >= 1.19).
std::vector<uint32_t> SeedSequenceState(uint64_t entropy, const std::vector<uint64_t>& spawn_key,
                                        int pool_size, int words);

}  // namespace raylight::samplers
