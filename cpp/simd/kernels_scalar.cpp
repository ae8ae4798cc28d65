// The scalar reference kernels: plain loops in baseline code, the oracle every SIMD level is tested
// against (tests/test_kernels.py) and the fallback on CPUs without AVX2.
#include <cmath>

#include "simd/convert.h"
#include "simd/kernel_table.h"

namespace recallcore::simd {
namespace {

inline float value(float x) { return x; }
inline float value(std::uint16_t h) { return f16_to_f32(h); }
inline float value(std::int8_t c) { return float(c); }

template <class T>
float dot_t(const float* q, const T* v, std::size_t dim) {
  float s = 0.0f;
  for (std::size_t i = 0; i < dim; ++i) s += q[i] * value(v[i]);
  return s;
}

template <class T>
float l2_t(const float* q, const T* v, std::size_t dim) {
  float s = 0.0f;
  for (std::size_t i = 0; i < dim; ++i) {
    const float d = q[i] - value(v[i]);
    s += d * d;
  }
  return s;
}

float cosine_from(float dot, float qq, float vv) {
  if (qq == 0.0f || vv == 0.0f) return 1.0f;
  return 1.0f - dot / std::sqrt(qq * vv);
}

template <class T>
float cos_t(const float* q, const T* v, std::size_t dim) {
  float d = 0.0f, qq = 0.0f, vv = 0.0f;
  for (std::size_t i = 0; i < dim; ++i) {
    const float y = value(v[i]);
    d += q[i] * y;
    qq += q[i] * q[i];
    vv += y * y;
  }
  return cosine_from(d, qq, vv);
}

float dot_i8(const float* q, const std::int8_t* c, float scale, std::size_t dim) {
  return scale * dot_t(q, c, dim);
}
float cos_i8(const float* q, const std::int8_t* c, float scale, std::size_t dim) {
  // A zero scale is the zero vector; a negative one flips every value; cosine is otherwise invariant.
  if (scale == 0.0f) return 1.0f;
  const float r = cos_t(q, c, dim);
  return scale < 0.0f ? 2.0f - r : r;
}
float l2_i8(const float* q, const std::int8_t* c, float scale, std::size_t dim) {
  float s = 0.0f;
  for (std::size_t i = 0; i < dim; ++i) {
    const float d = q[i] - scale * float(c[i]);
    s += d * d;
  }
  return s;
}

template <class T, float (*F)(const float*, const T*, std::size_t)>
void block_t(const float* q, const T* base, std::size_t n, std::size_t dim, float* out) {
  for (std::size_t r = 0; r < n; ++r) out[r] = F(q, base + r * dim, dim);
}

template <float (*F)(const float*, const std::int8_t*, float, std::size_t)>
void block_i8(const float* q, const std::int8_t* base, const float* scales, std::size_t n, std::size_t dim,
              float* out) {
  for (std::size_t r = 0; r < n; ++r) out[r] = F(q, base + r * dim, scales[r], dim);
}

template <float (*F)(const float*, const float*, std::size_t)>
void gather_t(const float* q, const float* const* rows, std::size_t n, std::size_t dim, float* out) {
  for (std::size_t r = 0; r < n; ++r) out[r] = F(q, rows[r], dim);
}

std::int32_t dot_i8i8(const std::int8_t* a, const std::int8_t* b, std::size_t dim) {
  std::int64_t s = 0;  // no signed overflow at any dim; the result wraps to 32 bits as the SIMD lanes do
  for (std::size_t i = 0; i < dim; ++i) s += std::int32_t(a[i]) * std::int32_t(b[i]);
  return std::int32_t(s);
}

void dot_i8i8_block(const std::int8_t* q, const std::int8_t* base, const std::int32_t* /*row_sums*/, std::size_t n,
                    std::size_t dim, std::int32_t* out) {
  for (std::size_t r = 0; r < n; ++r) out[r] = dot_i8i8(q, base + r * dim, dim);
}

std::int32_t dot_i16i8(const std::int16_t* q, const std::int8_t* c, std::size_t dim) {
  std::int64_t s = 0;
  for (std::size_t i = 0; i < dim; ++i) s += std::int32_t(q[i]) * std::int32_t(c[i]);
  return std::int32_t(s);  // modular (C++20), as the SIMD lanes wrap
}

}  // namespace

const KernelTable& scalar_table() {
  using u16 = std::uint16_t;
  static constexpr KernelTable t = {
      Level::scalar,
      {l2_t<float>, dot_t<float>, cos_t<float>},
      {l2_t<u16>, dot_t<u16>, cos_t<u16>},
      {l2_i8, dot_i8, cos_i8},
      {block_t<float, l2_t<float>>, block_t<float, dot_t<float>>, block_t<float, cos_t<float>>},
      {block_t<u16, l2_t<u16>>, block_t<u16, dot_t<u16>>, block_t<u16, cos_t<u16>>},
      {block_i8<l2_i8>, block_i8<dot_i8>, block_i8<cos_i8>},
      {gather_t<l2_t<float>>, gather_t<dot_t<float>>, gather_t<cos_t<float>>},
      dot_i8i8,
      dot_i8i8_block,
      dot_i16i8,
  };
  return t;
}

}  // namespace recallcore::simd
