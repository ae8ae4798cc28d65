// AVX-512 (F/BW/VL/DQ) kernels. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq; reached only
// through avx512_table() after dispatch.cpp confirmed CPU and OS (XCR0 opmask/ZMM state) support.
// The VNNI int8 dot lives in kernels_avx512_vnni.cpp: AVX-512 CPUs without VNNI exist (Skylake-X).
#include <immintrin.h>

#include "simd/kernel_table.h"

namespace recallcore::simd {
namespace {

struct Ops {
  using V = __m512;
  static constexpr unsigned long W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const unsigned short* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V load(const signed char* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static V fma(V a, V b, V acc) { return _mm512_fmadd_ps(a, b, acc); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  // GCC 12's _mm512_reduce_add_* trip -Werror=uninitialized inside the intrinsic headers: reduce by hand.
  static float hsum(V v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  using VI = __m512i;
  static constexpr unsigned long WI = 32;
  static VI zeroi() { return _mm512_setzero_si512(); }
  static VI addi(VI a, VI b) { return _mm512_add_epi32(a, b); }
  static VI madd(const short* q, const signed char* c, VI acc) {
    const __m512i x = _mm512_loadu_si512(q);
    const __m512i y = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
  }
  static int hsumi(VI v) {
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
  }
};

#include "simd/kernel_body.h"

std::int32_t dot_i8i8_avx512(const std::int8_t* a, const std::int8_t* b, std::size_t dim) {
  __m512i acc = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    __m512i y = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
  }
  std::int32_t lanes[16];
  _mm512_storeu_si512(lanes, acc);
  std::int32_t r = 0;
  for (int k = 0; k < 16; ++k) r += lanes[k];
  for (; i < dim; ++i) r += std::int32_t(a[i]) * std::int32_t(b[i]);
  return r;
}

}  // namespace

const KernelTable& avx512_table() {
  static constexpr KernelTable t = RECALLCORE_KERNEL_TABLE(Level::avx512, dot_i8i8_avx512);
  return t;
}

}  // namespace recallcore::simd
