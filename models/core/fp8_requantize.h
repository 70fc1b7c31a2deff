// A LoRA merged into a scaled-fp8 weight goes back to fp8 as ComfyUI puts it back
// (comfy/ops.py scaled_fp8_ops.set_weight, comfy/float.py stochastic_rounding): the merged value
// over the weight's own scale, stochastically rounded to the fp8 format with a generator seeded
// from the weight's ComfyUI key (model_patcher.string_to_seed), in float16 steps and row slices as
// ComfyUI takes them, so that the same random draws give the same bits. The weight keeps its fp8
// memory (half of bf16's) instead of growing to the compute dtype.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace raylight::models {

// ComfyUI's string_to_seed: CRC-32 (reflected, 0xEDB88320) of the key's bytes.
uint32_t ComfyKeySeed(const std::string& key);

// `value` (float32, on the CPU or a GPU) stochastically rounded to `dtype` (kFloat8_e4m3fn or
// kFloat8_e5m2) with a generator of `value`'s device seeded with `seed`.
at::Tensor StochasticRoundToFp8(const at::Tensor& value, at::ScalarType dtype, uint64_t seed);

}  // namespace raylight::models
