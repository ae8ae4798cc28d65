// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; reached only through avx2_table(),
// which dispatch.cpp hands out only after CPUID + XGETBV confirmed the CPU and OS support it.
#include <immintrin.h>

#include "simd/kernel_table.h"

namespace recallcore::simd {
namespace {

struct Ops {
  using V = __m256;
  static constexpr unsigned long W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const unsigned short* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load(const signed char* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static V fma(V a, V b, V acc) { return _mm256_fmadd_ps(a, b, acc); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  using VI = __m256i;
  static constexpr unsigned long WI = 16;
  static VI zeroi() { return _mm256_setzero_si256(); }
  static VI addi(VI a, VI b) { return _mm256_add_epi32(a, b); }
  static VI madd(const short* q, const signed char* c, VI acc) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
  }
  static int hsumi(VI v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
  }
};

#include "simd/kernel_body.h"

std::int32_t dot_i8i8_avx2(const std::int8_t* a, const std::int8_t* b, std::size_t dim) {
  __m256i acc = _mm256_setzero_si256();
  std::size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    __m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    __m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
  }
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  std::int32_t r = _mm_cvtsi128_si32(s);
  for (; i < dim; ++i) r += std::int32_t(a[i]) * std::int32_t(b[i]);
  return r;
}

}  // namespace

const KernelTable& avx2_table() {
  static constexpr KernelTable t = RECALLCORE_KERNEL_TABLE(Level::avx2, dot_i8i8_avx2);
  return t;
}

}  // namespace recallcore::simd
