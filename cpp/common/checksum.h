// A fast 64-bit checksum for snapshot and index files: four independent multiply-xor lanes over
// 8-byte words (about a byte per cycle), folded at the end. It detects corruption and truncation;
// it is not a cryptographic hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace recallcore {

inline std::uint64_t checksum64(const void* data, std::size_t n, std::uint64_t seed = 0x9E3779B97F4A7C15ull) {
  constexpr std::uint64_t k = 0xFF51AFD7ED558CCDull;
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h[4] = {seed, seed ^ 0x1, seed ^ 0x2, seed ^ 0x3};
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      std::uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      h[l] = (h[l] ^ w) * k;
      h[l] ^= h[l] >> 29;
    }
  }
  std::uint64_t r = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7) ^ n;
  for (; i < n; ++i) r = (r ^ p[i]) * 0x100000001B3ull;
  r ^= r >> 33;
  r *= k;
  r ^= r >> 33;
  return r;
}

}  // namespace recallcore
