// AVX512-VNNI int8 dot (vpdpwssd: multiply int16 pairs and accumulate into int32 in one instruction).
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

// One query against n rows, 64 byte products per instruction. vpdpbusd multiplies unsigned bytes by
// signed ones: with u = q + 128 (q xor 0x80), u.c = q.c + 128 * sum(c), and sum(c) is one more vpdpbusd
// against ones. Exact in int32 (|u.c| <= 255 * 128 * dim). The tail is a masked load: zero codes
// contribute nothing to either sum.
void avx512_vnni_dot_i8i8_block(const std::int8_t* q, const std::int8_t* base, std::size_t n, std::size_t dim,
                                std::int32_t* out) {
  const __m512i flip = _mm512_set1_epi8(char(0x80)), ones = _mm512_set1_epi8(1);
  const std::size_t tail = dim % 64, full = dim - tail;
  const __mmask64 tail_mask = _cvtu64_mask64(tail == 0 ? 0 : (~std::uint64_t(0) >> (64 - tail)));
  for (std::size_t r = 0; r < n; ++r) {
    const std::int8_t* c = base + r * dim;
    if (r + 8 < n)
      for (std::size_t b = 0; b < dim; b += 64) _mm_prefetch(reinterpret_cast<const char*>(c + 8 * dim + b), _MM_HINT_T0);
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
    __m512i sum0 = _mm512_setzero_si512(), sum1 = _mm512_setzero_si512();
    std::size_t i = 0;
    for (; i + 128 <= full; i += 128) {
      const __m512i x0 = _mm512_loadu_si512(c + i), x1 = _mm512_loadu_si512(c + i + 64);
      acc0 = _mm512_dpbusd_epi32(acc0, _mm512_xor_si512(_mm512_loadu_si512(q + i), flip), x0);
      acc1 = _mm512_dpbusd_epi32(acc1, _mm512_xor_si512(_mm512_loadu_si512(q + i + 64), flip), x1);
      sum0 = _mm512_dpbusd_epi32(sum0, ones, x0);
      sum1 = _mm512_dpbusd_epi32(sum1, ones, x1);
    }
    if (i < full) {
      const __m512i x = _mm512_loadu_si512(c + i);
      acc0 = _mm512_dpbusd_epi32(acc0, _mm512_xor_si512(_mm512_loadu_si512(q + i), flip), x);
      sum0 = _mm512_dpbusd_epi32(sum0, ones, x);
      i += 64;
    }
    if (tail != 0) {
      const __m512i x = _mm512_maskz_loadu_epi8(tail_mask, c + i);
      acc1 = _mm512_dpbusd_epi32(acc1, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail_mask, q + i), flip), x);
      sum1 = _mm512_dpbusd_epi32(sum1, ones, x);
    }
    const __m512i v = _mm512_sub_epi32(_mm512_add_epi32(acc0, acc1), _mm512_slli_epi32(_mm512_add_epi32(sum0, sum1), 7));
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    out[r] = _mm_cvtsi128_si32(s);
  }
}

}  // namespace recallcore::simd
