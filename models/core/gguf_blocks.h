// GGUF's quantisation blocks, decoded one value at a time: the one definition that the CPU loop
// (gguf_dequant.cc) and the CUDA kernel (gguf_dequant_cuda.cu) both compile, so the two paths give
// the same bits. Layouts and arithmetic are ggml's (ggml-quants.c, dequantize_row_*), including
// the order of each multiply and subtract, so that with FMA contraction off the values equal
// gguf-py's float32 reference exactly.
//
// `block` points at one block's bytes, `e` is the value's index inside it (0..31 for the 32-value
// types, 0..255 for the K types).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define RAYLIGHT_HD __host__ __device__ __forceinline__
#else
#define RAYLIGHT_HD inline
#endif

namespace raylight::models::gguf_blocks {

RAYLIGHT_HD float BitsToFloat(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

RAYLIGHT_HD uint32_t FloatToBits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// IEEE half to float, exact for every value (subnormals, infinities, NaN).
RAYLIGHT_HD float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1Fu;
  uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0x1Fu) return BitsToFloat(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return BitsToFloat(sign);
    // Subnormal: value = mantissa * 2^-24, exact in float.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return BitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

RAYLIGHT_HD float BF16ToFloat(uint16_t bf16) {
  return BitsToFloat(static_cast<uint32_t>(bf16) << 16);
}

// Round to nearest even, as torch's float -> bfloat16 conversion does (NaN stays NaN).
RAYLIGHT_HD uint16_t FloatToBF16(float value) {
  const uint32_t bits = FloatToBits(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

RAYLIGHT_HD uint16_t Load16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}

RAYLIGHT_HD float LoadHalf(const uint8_t* p) { return HalfToFloat(Load16(p)); }

// ---- 32-value blocks ----------------------------------------------------------------------------
// Q4_0: d (f16), 16 bytes of nibbles; value e < 16 is the low nibble of byte e, e >= 16 the high
// nibble of byte e - 16; value = d * (q - 8).
RAYLIGHT_HD float DecodeQ4_0(const uint8_t* block, int e) {
  const uint8_t byte = block[2 + (e & 15)];
  const int q = ((e < 16) ? (byte & 0xF) : (byte >> 4)) - 8;
  return LoadHalf(block) * static_cast<float>(q);
}

// Q4_1: d, m (f16), nibbles as Q4_0; value = d * q + m.
RAYLIGHT_HD float DecodeQ4_1(const uint8_t* block, int e) {
  const uint8_t byte = block[4 + (e & 15)];
  const int q = (e < 16) ? (byte & 0xF) : (byte >> 4);
  return LoadHalf(block) * static_cast<float>(q) + LoadHalf(block + 2);
}

RAYLIGHT_HD uint32_t Load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// Q5_0: d, qh (32 bits: bit e is value e's fifth bit), nibbles; value = d * (q - 16).
RAYLIGHT_HD float DecodeQ5_0(const uint8_t* block, int e) {
  const uint8_t byte = block[6 + (e & 15)];
  const int low = (e < 16) ? (byte & 0xF) : (byte >> 4);
  const int high = (Load32(block + 2) >> e) & 1;
  return LoadHalf(block) * static_cast<float>((low | (high << 4)) - 16);
}

// Q5_1: d, m, qh, nibbles; value = d * q + m.
RAYLIGHT_HD float DecodeQ5_1(const uint8_t* block, int e) {
  const uint8_t byte = block[8 + (e & 15)];
  const int low = (e < 16) ? (byte & 0xF) : (byte >> 4);
  const int high = (Load32(block + 4) >> e) & 1;
  return LoadHalf(block) * static_cast<float>(low | (high << 4)) + LoadHalf(block + 2);
}

// Q8_0: d, 32 signed bytes; value = q * d.
RAYLIGHT_HD float DecodeQ8_0(const uint8_t* block, int e) {
  return static_cast<float>(static_cast<int8_t>(block[2 + e])) * LoadHalf(block);
}

// ---- 256-value K blocks -------------------------------------------------------------------------
// Q2_K: scales[16] (low nibble: scale, high: min, per 16 values), qs[64] (2 bits), d, dmin.
// Value e: half h = e / 128 uses bytes qs[32 h .. 32 h + 31], shift 2 * ((e % 128) / 32).
RAYLIGHT_HD float DecodeQ2_K(const uint8_t* block, int e) {
  const uint8_t scale = block[e / 16];
  const int q = (block[16 + 32 * (e / 128) + (e & 31)] >> (2 * ((e % 128) / 32))) & 3;
  const float d = LoadHalf(block + 80) * static_cast<float>(scale & 0xF);
  const float m = LoadHalf(block + 82) * static_cast<float>(scale >> 4);
  return d * static_cast<float>(q) - m;
}

// Q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales, biased by 32), d. The high bit of value
// e is bit e / 32 of hmask[e % 32]; a clear bit subtracts 4.
RAYLIGHT_HD float DecodeQ3_K(const uint8_t* block, int e) {
  const uint8_t* scales = block + 96;
  const int s = e / 16;
  const int low_scale = (s < 8) ? (scales[s] & 0xF) : (scales[s - 8] >> 4);
  const int high_scale = (scales[8 + (s & 3)] >> (2 * (s / 4))) & 3;
  const int scale = (low_scale | (high_scale << 4)) - 32;
  const int low = (block[32 + 32 * (e / 128) + (e & 31)] >> (2 * ((e % 128) / 32))) & 3;
  const int high = (block[e & 31] >> (e / 32)) & 1;
  const float d = LoadHalf(block + 108) * static_cast<float>(scale);
  return d * static_cast<float>(low - (high ? 0 : 4));
}

// Q4_K and Q5_K's eight 6-bit scales and mins per 32 values, packed in 12 bytes.
RAYLIGHT_HD void ScaleMinK4(const uint8_t* packed, int sub, int* scale, int* min) {
  if (sub < 4) {
    *scale = packed[sub] & 63;
    *min = packed[sub + 4] & 63;
  } else {
    *scale = (packed[sub + 4] & 0xF) | ((packed[sub - 4] >> 6) << 4);
    *min = (packed[sub + 4] >> 4) | ((packed[sub] >> 6) << 4);
  }
}

// Q4_K: d, dmin, scales[12], qs[128]. Value e: sub-block e / 32, byte qs[32 (e / 64) + e % 32],
// low nibble for even sub-blocks, high for odd.
RAYLIGHT_HD float DecodeQ4_K(const uint8_t* block, int e) {
  const int sub = e / 32;
  int scale, min;
  ScaleMinK4(block + 4, sub, &scale, &min);
  const uint8_t byte = block[16 + 32 * (sub / 2) + (e & 31)];
  const int q = (sub & 1) ? (byte >> 4) : (byte & 0xF);
  const float d = LoadHalf(block) * static_cast<float>(scale);
  const float m = LoadHalf(block + 2) * static_cast<float>(min);
  return d * static_cast<float>(q) - m;
}

// Q5_K: d, dmin, scales[12], qh[32] (bit sub of qh[e % 32]), qs[128] as Q4_K.
RAYLIGHT_HD float DecodeQ5_K(const uint8_t* block, int e) {
  const int sub = e / 32;
  int scale, min;
  ScaleMinK4(block + 4, sub, &scale, &min);
  const uint8_t byte = block[48 + 32 * (sub / 2) + (e & 31)];
  const int low = (sub & 1) ? (byte >> 4) : (byte & 0xF);
  const int high = (block[16 + (e & 31)] >> sub) & 1;
  const float d = LoadHalf(block) * static_cast<float>(scale);
  const float m = LoadHalf(block + 2) * static_cast<float>(min);
  return d * static_cast<float>(low | (high << 4)) - m;
}

// Q6_K: ql[128], qh[64], scales[16] (signed, per 16 values), d. Value e: half h = e / 128;
// low nibble of ql[64 h + e % 64] (high nibble for (e % 128) >= 64); two high bits of
// qh[32 h + e % 32] at shift 2 ((e % 128) / 32); value = d * scale * (q - 32).
RAYLIGHT_HD float DecodeQ6_K(const uint8_t* block, int e) {
  const int h = e / 128;
  const int within = e % 128;
  const uint8_t low_byte = block[64 * h + (within & 63)];
  const int low = (within < 64) ? (low_byte & 0xF) : (low_byte >> 4);
  const int high = (block[128 + 32 * h + (e & 31)] >> (2 * (within / 32))) & 3;
  const float d =
      LoadHalf(block + 208) * static_cast<float>(static_cast<int8_t>(block[192 + e / 16]));
  return d * static_cast<float>((low | (high << 4)) - 32);
}

}  // namespace raylight::models::gguf_blocks
