#include "common/fast_checksum.h"

#include <array>

#include "common/checksum.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define RECALLCORE_CRC_X86 1
#endif

namespace recallcore {

namespace {

constexpr std::size_t kLanes = 3;  // the instruction's latency is 3 cycles, its throughput 1 per cycle

// CRC-32C (reflected polynomial 0x82F63B78) of eight bytes, without pre- or post-inversion: what the
// x86 crc32 instruction on a 64-bit operand computes.
constexpr std::array<std::uint32_t, 256> kTable = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}();

std::uint32_t crc_word_table(std::uint32_t crc, std::uint64_t w) {
  for (int b = 0; b < 8; ++b, w >>= 8) crc = kTable[(crc ^ std::uint32_t(w)) & 0xFF] ^ (crc >> 8);
  return crc;
}

struct Lanes {
  std::uint32_t c[kLanes];
  explicit Lanes(std::uint64_t seed)
      : c{std::uint32_t(seed), std::uint32_t(seed >> 32), std::uint32_t(seed >> 16) ^ 0x9E3779B9u} {}
  // The lanes and the length, and the last (under 24) bytes, into one 64-bit value.
  std::uint64_t finish(const unsigned char* tail, std::size_t n, std::uint64_t seed) const {
    const std::uint64_t fold[3] = {(std::uint64_t(c[0]) << 32) | c[1], c[2], std::uint64_t(n)};
    return checksum64(fold, sizeof fold, checksum64(tail, n % (8 * kLanes), seed));
  }
};

// The word loop is written out twice: the instruction is only usable inside a target-attributed
// function, and a call per word would cost more than the CRC itself.
#if defined(RECALLCORE_CRC_X86)
__attribute__((target("sse4.2"))) std::uint64_t lanes_hw(const void* data, std::size_t n, std::uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  Lanes s(seed);
  std::size_t i = 0;
  for (; i + 8 * kLanes <= n; i += 8 * kLanes)
    for (std::size_t l = 0; l < kLanes; ++l)
      s.c[l] = std::uint32_t(_mm_crc32_u64(s.c[l], load_le64(p + i + 8 * l)));
  return s.finish(p + i, n, seed);
}
bool have_hw() { return __builtin_cpu_supports("sse4.2"); }
#endif

}  // namespace

std::uint64_t fast_checksum64_portable(const void* data, std::size_t n, std::uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  Lanes s(seed);
  std::size_t i = 0;
  for (; i + 8 * kLanes <= n; i += 8 * kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) s.c[l] = crc_word_table(s.c[l], load_le64(p + i + 8 * l));
  return s.finish(p + i, n, seed);
}

std::uint64_t fast_checksum64(const void* data, std::size_t n, std::uint64_t seed) {
#if defined(RECALLCORE_CRC_X86)
  static const bool hw = have_hw();
  if (hw) return lanes_hw(data, n, seed);
#endif
  return fast_checksum64_portable(data, n, seed);
}

}  // namespace recallcore
