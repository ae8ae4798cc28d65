// AVX512-VNNI integer dots (vpdpwssd: multiply int16 pairs and accumulate into int32 in one instruction).
// Compiled with -mavx512vnni; used only when CPUID reports AVX512_VNNI.
#include <immintrin.h>

#include "simd/kernel_table.h"

namespace recallcore::simd {

std::int32_t avx512_vnni_dot_i8i8(const std::int8_t* a, const std::int8_t* b, std::size_t dim) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    __m512i y0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
    __m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 32)));
    __m512i y1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i + 32)));
    acc0 = _mm512_dpwssd_epi32(acc0, x0, y0);
    acc1 = _mm512_dpwssd_epi32(acc1, x1, y1);
  }
  for (; i + 32 <= dim; i += 32) {
    __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    __m512i y = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i)));
    acc0 = _mm512_dpwssd_epi32(acc0, x, y);
  }
  // Reduced through memory: GCC 12's _mm512_reduce_add_epi32 trips -Werror=uninitialized.
  std::int32_t lanes[16];
  _mm512_storeu_si512(lanes, _mm512_add_epi32(acc0, acc1));
  std::int32_t r = 0;
  for (int k = 0; k < 16; ++k) r += lanes[k];
  for (; i < dim; ++i) r += std::int32_t(a[i]) * std::int32_t(b[i]);
  return r;
}

// The index's estimate kernel (see dot_i16i8 in kernel_body.h) with the multiply-add and the
// accumulation fused in vpdpwssd.
std::int32_t avx512_vnni_dot_i16i8(const std::int16_t* q, const std::int8_t* c, std::size_t dim) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    __m512i y0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)));
    __m512i y1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 32)));
    acc0 = _mm512_dpwssd_epi32(acc0, _mm512_loadu_si512(q + i), y0);
    acc1 = _mm512_dpwssd_epi32(acc1, _mm512_loadu_si512(q + i + 32), y1);
  }
  for (; i + 32 <= dim; i += 32) {
    __m512i y = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)));
    acc0 = _mm512_dpwssd_epi32(acc0, _mm512_loadu_si512(q + i), y);
  }
  std::int32_t lanes[16];
  _mm512_storeu_si512(lanes, _mm512_add_epi32(acc0, acc1));
  // Unsigned: the sum wraps like the lanes do, without signed overflow.
  std::uint32_t r = 0;
  for (int k = 0; k < 16; ++k) r += std::uint32_t(lanes[k]);
  for (; i < dim; ++i) r += std::uint32_t(std::int32_t(q[i]) * std::int32_t(c[i]));
  return std::int32_t(r);
}

}  // namespace recallcore::simd
