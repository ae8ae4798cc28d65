#include "simd/convert.h"

#include <cmath>
#include <cstring>

namespace recallcore::simd {

std::uint16_t f32_to_f16(float x) {
  std::uint32_t f;
  std::memcpy(&f, &x, 4);
  const std::uint32_t sign = (f >> 16) & 0x8000u;
  const std::uint32_t exp = (f >> 23) & 0xFFu;
  std::uint32_t mant = f & 0x7FFFFFu;
  if (exp == 0xFFu) return std::uint16_t(sign | 0x7C00u | (mant ? 0x200u | (mant >> 13) : 0u));
  const int e = int(exp) - 127 + 15;
  if (e >= 31) return std::uint16_t(sign | 0x7C00u);
  if (e <= 0) {
    if (e < -10) return std::uint16_t(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    std::uint32_t half = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u);
    const std::uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return std::uint16_t(sign | half);
  }
  std::uint32_t half = (std::uint32_t(e) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: correct
  return std::uint16_t(sign | half);
}

float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t f;
  if (exp == 0) {
    if (mant == 0) {
      f = sign;
    } else {  // subnormal half -> normal float
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      f = sign | (std::uint32_t(127 - 15 - e) << 23) | ((mant & 0x3FFu) << 13);
    }
  } else if (exp == 31) {
    f = sign | 0x7F800000u | (mant << 13);
  } else {
    f = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float x;
  std::memcpy(&x, &f, 4);
  return x;
}

void encode_f16(const float* x, std::size_t dim, std::uint16_t* out) {
  for (std::size_t i = 0; i < dim; ++i) out[i] = f32_to_f16(x[i]);
}

void decode_f16(const std::uint16_t* h, std::size_t dim, float* out) {
  for (std::size_t i = 0; i < dim; ++i) out[i] = f16_to_f32(h[i]);
}

float encode_i8(const float* x, std::size_t dim, std::int8_t* out) {
  // Plain comparisons and the 1.5 * 2^23 rounding trick instead of std::fmax / std::nearbyint: in
  // baseline x86-64 code those are libm calls per element (half the cost of building a namespace's
  // scan copies). Same results for finite input, which is all the index and the store accept:
  // adding and subtracting 1.5 * 2^23 rounds |v| < 2^22 to the nearest integer, ties to even, as
  // nearbyint does in the default rounding mode.
  float amax = 0.0f;
  for (std::size_t i = 0; i < dim; ++i) {
    const float a = std::fabs(x[i]);
    amax = a > amax ? a : amax;
  }
  if (amax == 0.0f) {
    std::memset(out, 0, dim);
    return 0.0f;
  }
  const float scale = amax / 127.0f;
  const float inv = 127.0f / amax;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  for (std::size_t i = 0; i < dim; ++i) {
    float c = (x[i] * inv + kRound) - kRound;
    c = c < -127.0f ? -127.0f : (c > 127.0f ? 127.0f : c);
    out[i] = std::int8_t(c);
  }
  return scale;
}

void decode_i8(const std::int8_t* c, float scale, std::size_t dim, float* out) {
  for (std::size_t i = 0; i < dim; ++i) out[i] = scale * float(c[i]);
}

}  // namespace recallcore::simd
