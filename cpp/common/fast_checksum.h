// A second 64-bit checksum for the large sections a cold open must verify before it uses them (the
// row table image in snapshot.rc, the HNSW id map and meta sections, formats 5 and 3): three CRC-32C
// lanes over interleaved 8-byte little-endian words, folded with checksum64. The CRC instruction
// (SSE4.2 on x86-64) runs it at ~28 GB/s where checksum64 manages ~10 (measured on 12.8 MB: 0.45 vs
// 1.2 ms), which is most of what verifying those sections costs. Other CPUs use a table with the same
// result (slower), so a file verifies the same everywhere. Not cryptographic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace recallcore {

std::uint64_t fast_checksum64(const void* data, std::size_t n, std::uint64_t seed = 0);
// The table implementation, whatever the CPU (tests compare it with the instruction).
std::uint64_t fast_checksum64_portable(const void* data, std::size_t n, std::uint64_t seed = 0);

}  // namespace recallcore
