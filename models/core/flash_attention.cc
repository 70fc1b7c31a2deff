#include "models/core/flash_attention.h"

#include <cmath>
#include <cstdint>
#include <limits>

#if RAYLIGHT_HAVE_FLASH_ATTENTION_SM90
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include "models/core/flash_attention_sm90.h"
#endif

namespace raylight::models {

bool FlashAttentionSm90Runs(const at::Device& device, std::string* why) {
  auto refuse = [&](const char* reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
#if RAYLIGHT_HAVE_FLASH_ATTENTION_SM90
  if (!device.is_cuda()) return refuse("the Hopper attention kernel runs on CUDA devices only");
  const cudaDeviceProp* properties =
      at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0);
  if (properties->major != 9 || properties->minor != 0) {
    return refuse("the Hopper attention kernel is built for sm_90a (H100, H200) only");
  }
  return true;
#else
  (void)device;
  return refuse("this build has no Hopper attention kernel (FlashInfer's headers were not found)");
#endif
}

bool FlashAttentionSm90Takes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if RAYLIGHT_HAVE_FLASH_ATTENTION_SM90
  for (const at::Tensor* t : {&q, &k, &v}) {
    if (t->dim() != 4 || t->scalar_type() != at::kBFloat16 || t->device() != q.device() ||
        t->size(3) != kFlashAttentionSm90HeadDim || t->stride(3) != 1 || t->numel() == 0) {
      return false;
    }
    if (reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 != 0) return false;
    // The kernel's token and head strides, and a sample's offset where there are several.
    for (const int64_t stride : {t->stride(1), t->stride(2)}) {
      if (stride <= 0 || stride % 8 != 0) return false;
    }
    if (t->size(0) > 1 && t->stride(0) % 8 != 0) return false;
  }
  const int64_t int_max = std::numeric_limits<int>::max();
  return k.sizes() == v.sizes() && q.size(0) == k.size(0) && q.size(2) % k.size(2) == 0 &&
         q.size(1) <= int_max && k.size(1) <= int_max && FlashAttentionSm90Runs(q.device());
#else
  (void)q, (void)k, (void)v;
  return false;
#endif
}

at::Tensor FlashAttentionSm90(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!FlashAttentionSm90Takes(q, k, v)) {  // includes the device check; says which failed
    std::string why;
    TORCH_CHECK(FlashAttentionSm90Runs(q.device(), &why), "attention: ", why);
    TORCH_CHECK(false,
                "attention: the Hopper kernel takes bf16 q [B, Lq, H, 128], k and v [B, Lk, Hkv, "
                "128] with the last dimension contiguous and 16-byte strides; got q ",
                q.sizes(), " ", q.scalar_type(), ", k ", k.sizes(), ", v ", v.sizes());
  }
#if RAYLIGHT_HAVE_FLASH_ATTENTION_SM90
  at::Tensor out = at::empty(q.sizes(), q.options());
  const c10::cuda::CUDAGuard guard(q.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream(q.device().index()).stream();
  const int64_t element = q.element_size();
  auto at_sample = [&](const at::Tensor& t, int64_t b) {
    return static_cast<char*>(t.data_ptr()) + b * t.stride(0) * element;
  };
  FlashAttentionSm90Args args;
  args.q_token_stride = q.stride(1), args.q_head_stride = q.stride(2);
  args.k_token_stride = k.stride(1), args.k_head_stride = k.stride(2);
  args.v_token_stride = v.stride(1), args.v_head_stride = v.stride(2);
  args.out_token_stride = out.stride(1), args.out_head_stride = out.stride(2);
  args.q_len = static_cast<int>(q.size(1));
  args.kv_len = static_cast<int>(k.size(1));
  args.heads = static_cast<int>(q.size(2));
  args.kv_heads = static_cast<int>(k.size(2));
  args.scale = 1.0f / std::sqrt(static_cast<float>(kFlashAttentionSm90HeadDim));
  for (int64_t b = 0; b < q.size(0); ++b) {
    args.q = at_sample(q, b), args.k = at_sample(k, b), args.v = at_sample(v, b);
    args.out = at_sample(out, b);
    const int error = LaunchFlashAttentionSm90(args, stream);
    TORCH_CHECK(error == 0, "attention: the Hopper kernel: ",
                cudaGetErrorString(static_cast<cudaError_t>(error)));
  }
  return out;
#else
  return {};
#endif
}

}  // namespace raylight::models
