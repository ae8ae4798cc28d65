// AVX512-VNNI integer dots (vpdpwssd: int16 pairs, vpdpbusd: unsigned-by-signed byte quads, multiplied and
// accumulated into int32 in one instruction).
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
// against ones unless the caller keeps row_sums (then half the instructions). Exact in int32
// (|u.c| <= 255 * 128 * dim). Four rows at a time share each load of the query and one reduction
// tree. Tails are masked loads: zero bytes add nothing to either sum.
namespace {

inline __mmask64 tail_mask(std::size_t tail) {
  return _cvtu64_mask64(tail == 0 ? 0 : (~std::uint64_t(0) >> (64 - tail)));
}

// Horizontal sums of four vectors, as lanes 0..3 of the result.
inline __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d) {
  auto fold = [](__m512i v) {  // 16 lanes -> 4 lanes
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  };
  const __m128i fa = fold(a), fb = fold(b), fc = fold(c), fd = fold(d);
  const __m128i ab = _mm_hadd_epi32(fa, fb), cd = _mm_hadd_epi32(fc, fd);
  return _mm_hadd_epi32(ab, cd);
}

// kKeptSums: the rows' code sums come from row_sums (one vpdpbusd per 64 bytes per row); otherwise a
// second vpdpbusd against ones computes them alongside.
template <bool kKeptSums>
void dot_u8i8_block(const std::int8_t* q, const std::int8_t* base, const std::int32_t* row_sums, std::size_t n,
                    std::size_t dim, std::int32_t* out) {
  const __m512i flip = _mm512_set1_epi8(char(0x80)), ones = _mm512_set1_epi8(1);
  const std::size_t full = dim - dim % 64;
  const __mmask64 tm = tail_mask(dim % 64);
  constexpr std::size_t kAhead = 8;  // rows prefetched ahead: enough to cover DRAM latency on cold rows
  std::size_t r = 0;
  for (; r + 4 <= n; r += 4) {
    const std::int8_t* c = base + r * dim;
    if (r + kAhead + 4 <= n)
      for (std::size_t b = 0; b < 4 * dim; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(c + kAhead * dim + b), _MM_HINT_T0);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, s0 = a0, s1 = a0, s2 = a0, s3 = a0;
    auto step = [&](__m512i u, __m512i x0, __m512i x1, __m512i x2, __m512i x3) {
      a0 = _mm512_dpbusd_epi32(a0, u, x0);
      a1 = _mm512_dpbusd_epi32(a1, u, x1);
      a2 = _mm512_dpbusd_epi32(a2, u, x2);
      a3 = _mm512_dpbusd_epi32(a3, u, x3);
      if constexpr (!kKeptSums) {
        s0 = _mm512_dpbusd_epi32(s0, ones, x0);
        s1 = _mm512_dpbusd_epi32(s1, ones, x1);
        s2 = _mm512_dpbusd_epi32(s2, ones, x2);
        s3 = _mm512_dpbusd_epi32(s3, ones, x3);
      }
    };
    std::size_t i = 0;
    for (; i < full; i += 64)
      step(_mm512_xor_si512(_mm512_loadu_si512(q + i), flip), _mm512_loadu_si512(c + i),
           _mm512_loadu_si512(c + dim + i), _mm512_loadu_si512(c + 2 * dim + i), _mm512_loadu_si512(c + 3 * dim + i));
    if (i < dim)
      step(_mm512_xor_si512(_mm512_maskz_loadu_epi8(tm, q + i), flip), _mm512_maskz_loadu_epi8(tm, c + i),
           _mm512_maskz_loadu_epi8(tm, c + dim + i), _mm512_maskz_loadu_epi8(tm, c + 2 * dim + i),
           _mm512_maskz_loadu_epi8(tm, c + 3 * dim + i));
    const __m128i sums = kKeptSums ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(row_sums + r))
                                   : hsum4(s0, s1, s2, s3);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + r), _mm_sub_epi32(hsum4(a0, a1, a2, a3), _mm_slli_epi32(sums, 7)));
  }
  for (; r < n; ++r) {  // the last n % 4 rows one at a time
    const std::int8_t* c = base + r * dim;
    __m512i a = _mm512_setzero_si512(), s = a;
    auto step = [&](__m512i u, __m512i x) {
      a = _mm512_dpbusd_epi32(a, u, x);
      if constexpr (!kKeptSums) s = _mm512_dpbusd_epi32(s, ones, x);
    };
    std::size_t i = 0;
    for (; i < full; i += 64) step(_mm512_xor_si512(_mm512_loadu_si512(q + i), flip), _mm512_loadu_si512(c + i));
    if (i < dim) step(_mm512_xor_si512(_mm512_maskz_loadu_epi8(tm, q + i), flip), _mm512_maskz_loadu_epi8(tm, c + i));
    const __m512i z = _mm512_setzero_si512();
    const __m128i sum = kKeptSums ? _mm_cvtsi32_si128(row_sums[r]) : hsum4(s, z, z, z);
    out[r] = _mm_cvtsi128_si32(_mm_sub_epi32(hsum4(a, z, z, z), _mm_slli_epi32(sum, 7)));  // lanes wrap: no UB
  }
}

}  // namespace

void avx512_vnni_dot_i8i8_block(const std::int8_t* q, const std::int8_t* base, const std::int32_t* row_sums,
                                std::size_t n, std::size_t dim, std::int32_t* out) {
  if (row_sums != nullptr)
    dot_u8i8_block<true>(q, base, row_sums, n, dim, out);
  else
    dot_u8i8_block<false>(q, base, nullptr, n, dim, out);
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
