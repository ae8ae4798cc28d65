// Python-free tests of cpp/common: the checksums every snapshot file relies on.
// Entry point: run_common_tests() (the shared test main calls it); returns the number of failures.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "common/checksum.h"
#include "common/fast_checksum.h"
#include "tests/check.h"

int run_common_tests();

namespace {

int failures = 0;

using namespace recallcore;

void test_fast_checksum() {
  std::vector<unsigned char> data(100003);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 131 + (i >> 7));
  // The CRC instruction (when this CPU has it) and the table agree on every length, including the
  // tails that are not a whole 24-byte stride, and for any seed.
  for (std::size_t n : {0, 1, 7, 8, 23, 24, 25, 47, 48, 1000, 100003})
    for (std::uint64_t seed : {std::uint64_t(0), std::uint64_t(0x4844), ~std::uint64_t(0)})
      CHECK(fast_checksum64(data.data(), n, seed) == fast_checksum64_portable(data.data(), n, seed));
  // One flipped bit anywhere changes the sum, and so do the length and the seed.
  const std::uint64_t base = fast_checksum64(data.data(), data.size());
  for (std::size_t at : {0, 5, 24, 50000, 99990, 100002}) {
    data[at] ^= 0x10;
    CHECK(fast_checksum64(data.data(), data.size()) != base);
    data[at] ^= 0x10;
  }
  CHECK(fast_checksum64(data.data(), data.size() - 1) != base);
  CHECK(fast_checksum64(data.data(), data.size(), 1) != base);
  // Zero bytes of different lengths must not collide (the length is folded in).
  const std::vector<unsigned char> zeros(96, 0);
  CHECK(fast_checksum64(zeros.data(), 48) != fast_checksum64(zeros.data(), 72));
}

}  // namespace

int run_common_tests() {
  test_fast_checksum();
  return failures;
}
