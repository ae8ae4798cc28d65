// Python-free tests of cpp/engine parts that the Python tests cannot observe: the record hints
// (prefetch-only, so a wrong one is invisible to any read).
// Entry point: run_engine_tests() (the shared test main calls it); returns the number of failures.
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/record_hints.h"
#include "tests/check.h"

int run_engine_tests();

namespace {

int failures = 0;

using namespace recallcore;

void test_record_hints() {
  engine::RecordHints hints;
  const char text[] = "some record bytes";
  CHECK(hints.address_of(7) == 0);
  hints.prefetch(7);  // no hint: nothing happens
  hints.remember(7, std::string_view(text));
  CHECK(hints.address_of(7) == reinterpret_cast<std::uintptr_t>(text));
  CHECK(hints.address_of(8) == 0);
  // Far ids get their own chunk; ids past the directory are ignored.
  hints.remember(std::uint64_t(1) << 31, std::string_view(text));
  CHECK(hints.address_of(std::uint64_t(1) << 31) == reinterpret_cast<std::uintptr_t>(text));
  hints.remember(std::uint64_t(1) << 40, std::string_view(text));
  CHECK(hints.address_of(std::uint64_t(1) << 40) == 0);

  // A hint into memory that is gone (a page LMDB unmapped on a resize) is prefetched without a fault.
  const long page = 4096;
  void* region = mmap(nullptr, page * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(region != MAP_FAILED);
  if (region != MAP_FAILED) {
    hints.remember(9, std::string_view(static_cast<const char*>(region) + 100, 3000));  // spans two pages
    munmap(region, page * 4);
    hints.prefetch(9);
  }

  // Readers remember concurrently, installing chunks as they go: every hint lands.
  engine::RecordHints shared;
  constexpr std::uint64_t kIds = std::uint64_t(1) << 21;  // 512 chunks, each raced for by all threads
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      while (!go.load()) {
      }
      for (std::uint64_t id = std::uint64_t(t); id < kIds; id += 4) shared.remember(id, std::string_view(text + t, 4));
    });
  go = true;
  for (auto& th : threads) th.join();
  int wrong = 0;
  for (std::uint64_t id = 0; id < kIds; ++id)
    wrong += shared.address_of(id) != reinterpret_cast<std::uintptr_t>(text + id % 4);
  CHECK(wrong == 0);
}

}  // namespace

int run_engine_tests() {
  test_record_hints();
  return failures;
}
