#include "models/core/gguf_dequant.h"

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "models/core/gguf.h"
#include "models/core/gguf_blocks.h"
#include "models/core/gguf_dequant_cuda.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace raylight::models {
namespace {

namespace gb = gguf_blocks;

using Decoder = float (*)(const uint8_t*, int);

Decoder DecoderOf(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0:
      return gb::DecodeQ4_0;
    case GgmlType::kQ4_1:
      return gb::DecodeQ4_1;
    case GgmlType::kQ5_0:
      return gb::DecodeQ5_0;
    case GgmlType::kQ5_1:
      return gb::DecodeQ5_1;
    case GgmlType::kQ8_0:
      return gb::DecodeQ8_0;
    case GgmlType::kQ2_K:
      return gb::DecodeQ2_K;
    case GgmlType::kQ3_K:
      return gb::DecodeQ3_K;
    case GgmlType::kQ4_K:
      return gb::DecodeQ4_K;
    case GgmlType::kQ5_K:
      return gb::DecodeQ5_K;
    case GgmlType::kQ6_K:
      return gb::DecodeQ6_K;
    default:
      return nullptr;
  }
}

// Every block decoded into float32 (bf16 written directly when asked: half the bytes).
template <typename Out, typename Convert>
void DecodeOnCpu(const uint8_t* blocks, int64_t num_blocks, const GgmlTypeTraits& traits,
                 Decoder decode, Out* out, Convert convert) {
  const int64_t values = traits.block_elements;
  at::parallel_for(0, num_blocks, 64, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const uint8_t* source = blocks + block * traits.block_bytes;
      Out* target = out + block * values;
      for (int e = 0; e < values; ++e) target[e] = convert(decode(source, e));
    }
  });
}

}  // namespace

absl::StatusOr<at::Tensor> DequantizeGguf(const at::Tensor& bytes, GgmlType type,
                                          at::IntArrayRef shape, at::ScalarType dtype) {
  const GgmlTypeTraits& traits = TraitsOf(type);
  const int64_t numel = c10::multiply_integers(shape);
  if (bytes.scalar_type() != at::kByte || !bytes.is_contiguous() ||
      numel % traits.block_elements != 0 || bytes.numel() != GgmlBytes(type, numel)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gguf: ", bytes.numel(), " bytes of ", c10::toString(bytes.scalar_type()),
                     " do not hold ", traits.name, " values of shape ", c10::str(shape)));
  }
  switch (type) {
    case GgmlType::kF32:
      return bytes.view(at::kFloat).view(shape).to(dtype);
    case GgmlType::kF16:
      return bytes.view(at::kHalf).view(shape).to(dtype);
    case GgmlType::kBF16:
      return bytes.view(at::kBFloat16).view(shape).to(dtype);
    default:
      break;
  }
  const Decoder decode = DecoderOf(type);
  const int64_t num_blocks = numel / traits.block_elements;
  // Decoded straight into bf16 where that is the dtype; float32 then a cast otherwise.
  const at::ScalarType direct = dtype == at::kBFloat16 ? at::kBFloat16 : at::kFloat;
  at::Tensor out = at::empty(shape, bytes.options().dtype(direct));
  const auto* source = bytes.const_data_ptr<uint8_t>();
  if (bytes.is_cuda()) {
#ifdef RAYLIGHT_HAVE_CUDA
    const c10::cuda::CUDAGuard guard(bytes.device());
    const int error = LaunchGgufDequant(
        static_cast<uint32_t>(type), source, num_blocks, out.data_ptr(),
        direct == at::kBFloat16 ? DequantOutput::kBFloat16 : DequantOutput::kFloat32,
        c10::cuda::getCurrentCUDAStream(bytes.device().index()).stream());
    if (error != 0) {
      return absl::InternalError(absl::StrCat("gguf: dequantising ", traits.name,
                                              " on the GPU failed (CUDA error ", error, ")"));
    }
#else
    return absl::FailedPreconditionError("gguf: built without CUDA");
#endif
  } else if (direct == at::kBFloat16) {
    DecodeOnCpu(source, num_blocks, traits, decode, out.data_ptr<at::BFloat16>(), [](float value) {
      return at::BFloat16(gb::FloatToBF16(value), at::BFloat16::from_bits());
    });
  } else {
    DecodeOnCpu(source, num_blocks, traits, decode, out.data_ptr<float>(),
                [](float value) { return value; });
  }
  return direct == dtype ? out : out.to(dtype);
}

}  // namespace raylight::models
