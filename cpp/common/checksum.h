// The one 64-bit checksum of every file the project writes (HNSW index, BM25 image, snapshot rows)
// and of normalised texts for duplicate detection: four independent FNV-style multiply-xor lanes over
// 8-byte little-endian words (about a byte per cycle), folded at the end. Each step is a bijection of
// the lane state, so a change confined to one word always changes the result. Not cryptographic.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace recallcore {

inline std::uint64_t load_le64(const unsigned char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);  // same sums on any host
  return w;
}

inline std::uint64_t checksum64(const void* data, std::size_t n, std::uint64_t seed = 0) {
  constexpr std::uint64_t P = 0x100000001B3ull;
  std::uint64_t h[4] = {seed ^ 0xCBF29CE484222325ull, seed ^ 0x84222325CBF29CE4ull, seed ^ 0x9E3779B97F4A7C15ull,
                        seed ^ 0xC2B2AE3D27D4EB4Full};
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 4; ++l) h[l] = (h[l] ^ load_le64(p + i + 8 * l)) * P;
  for (; i < n; ++i) h[0] = (h[0] ^ p[i]) * P;
  std::uint64_t r = std::uint64_t(n);
  for (int l = 0; l < 4; ++l) {
    r ^= h[l] + 0x9E3779B97F4A7C15ull + (r << 6) + (r >> 2);
    r *= P;
  }
  return r;
}

}  // namespace recallcore
