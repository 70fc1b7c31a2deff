// FlashInfer's Hopper attention kernel (flash_attention_sm90.h) on tensors: the default bf16
// attention on H100 / H200 (LocalAttention's kAuto), where cuDNN's fused kernel ran before.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace raylight::models {

// Whether this build has the kernel (FlashInfer's headers were found) and `device` runs it: a
// CUDA device of compute capability 9.0 exactly (the kernel is built for sm_90a). When not,
// says why.
bool FlashAttentionSm90Runs(const at::Device& device, std::string* why = nullptr);

// Whether FlashAttentionSm90 takes these inputs as they are: bf16 on a device it runs on, head
// size 128, the last dimension contiguous, strides and addresses as the kernel's TMA loads need
// them, non-empty. LocalAttention runs other inputs on cuDNN.
bool FlashAttentionSm90Takes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// q [B, Lq, H, D], k and v [B, Lk, Hkv, D] (H a multiple of Hkv) -> bf16 [B, Lq, H, D]
// (contiguous); scale 1/sqrt(D), no mask. One launch per sample. Throws c10::Error naming
// attention where FlashAttentionSm90Takes is false.
at::Tensor FlashAttentionSm90(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace raylight::models
