// Distance kernels with run-time ISA dispatch.
//
// Each ISA level lives in its own translation unit compiled with its own flags (kernels_scalar.cpp,
// kernels_avx2.cpp, kernels_avx512.cpp, kernels_avx512_vnni.cpp); this header and everything else is
// baseline x86-64. A level is exposed only as a table of plain function pointers, so no inline code
// compiled with AVX flags can leak into baseline code through the linker (faiss#5296).
//
// Conventions (all levels):
//   * pointers may be unaligned; any dim >= 0 (dim 0 gives dot 0, l2 0, cosine distance 1);
//   * accumulation is in float32; results agree with a float64 reference within ~1e-6 * dim * |a||b|;
//   * cosine returns the distance 1 - a.b / (|a||b|), and 1 when either norm is zero;
//   * NaN or inf in an input propagates to the result (the kernels do not check: the index and store
//     reject non-finite vectors at their boundary);
//   * f16 vectors are IEEE binary16 bit patterns; i8 vectors are codes c with value = scale * c.
#pragma once

#include <cstddef>
#include <cstdint>

namespace recallcore::simd {

enum class Level : std::uint8_t { scalar = 0, avx2 = 1, avx512 = 2 };

enum class Metric : std::uint8_t { l2 = 0, ip = 1, cosine = 2 };

using F32Fn = float (*)(const float* a, const float* b, std::size_t dim);
using F16Fn = float (*)(const float* q, const std::uint16_t* v, std::size_t dim);
using I8Fn = float (*)(const float* q, const std::int8_t* codes, float scale, std::size_t dim);
using F32BlockFn = void (*)(const float* q, const float* base, std::size_t n, std::size_t dim, float* out);
using F16BlockFn = void (*)(const float* q, const std::uint16_t* base, std::size_t n, std::size_t dim,
                            float* out);
using I8BlockFn = void (*)(const float* q, const std::int8_t* base, const float* scales, std::size_t n,
                           std::size_t dim, float* out);
using F32GatherFn = void (*)(const float* q, const float* const* rows, std::size_t n, std::size_t dim,
                             float* out);
using I8I8Fn = std::int32_t (*)(const std::int8_t* a, const std::int8_t* b, std::size_t dim);
// row_sums (optional, may be null): each row's sum of codes, which the VNNI kernel would otherwise
// compute alongside the dot (callers scanning the same rows many times keep them).
using I8I8BlockFn = void (*)(const std::int8_t* q, const std::int8_t* base, const std::int32_t* row_sums,
                             std::size_t n, std::size_t dim, std::int32_t* out);
using I16I8Fn = std::int32_t (*)(const std::int16_t* q, const std::int8_t* codes, std::size_t dim);

// One level's kernels. Index [m] by Metric: l2 -> squared L2, ip -> inner product a.b (a similarity:
// larger is closer), cosine -> cosine distance. Block variants compute one query against n
// contiguous rows of `dim` elements each.
struct KernelTable {
  Level level;
  F32Fn f32[3];
  F16Fn f16[3];
  I8Fn i8[3];
  F32BlockFn f32_block[3];
  F16BlockFn f16_block[3];
  I8BlockFn i8_block[3];
  // One query against n rows at scattered addresses (a graph node's neighbours), rows[i] -> out[i].
  F32GatherFn f32_gather[3];
  I8I8Fn dot_i8i8;  // exact integer dot of two code vectors (VNNI where the CPU has it)
  I8I8BlockFn dot_i8i8_block;  // the same of one code vector against n contiguous rows
  // Integer dot of an int16 query against int8 codes, exact while sum |q_i c_i| < 2^31 (wraps beyond):
  // the index's i8 estimate for ip/cosine with the query quantised once per search.
  I16I8Fn dot_i16i8;
};

// Per-level table getters, defined in the per-level translation units.
// (Declared everywhere; defined only where the build compiles that level, see dispatch.cpp.)
const KernelTable& scalar_table();
const KernelTable& avx2_table();
const KernelTable& avx512_table();
// Exact int8 dots with AVX512-VNNI; patched into the avx512 table when the CPU has VNNI.
std::int32_t avx512_vnni_dot_i8i8(const std::int8_t* a, const std::int8_t* b, std::size_t dim);
void avx512_vnni_dot_i8i8_block(const std::int8_t* q, const std::int8_t* base, const std::int32_t* row_sums,
                                std::size_t n, std::size_t dim, std::int32_t* out);
std::int32_t avx512_vnni_dot_i16i8(const std::int16_t* q, const std::int8_t* c, std::size_t dim);

}  // namespace recallcore::simd
