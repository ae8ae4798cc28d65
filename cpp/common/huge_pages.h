// An allocator for large, long-lived tables (the store's row table): blocks of 2 MiB or more are
// mapped directly and advised to use transparent huge pages, so filling a 100k-row table at open
// takes a handful of page faults instead of thousands (measured: most of the table's load time was
// first-touch faults of 4 KiB pages). Smaller blocks come from operator new.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>

namespace recallcore {

template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t(2) << 20;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHuge) return static_cast<T*>(::operator new(bytes, std::align_val_t(alignof(T))));
    void* p = ::mmap(nullptr, rounded(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ::madvise(p, rounded(bytes), MADV_HUGEPAGE);  // advisory: without THP it is an ordinary mapping
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHuge) {
      ::operator delete(p, std::align_val_t(alignof(T)));
      return;
    }
    ::munmap(p, rounded(bytes));
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }

 private:
  static std::size_t rounded(std::size_t bytes) { return (bytes + kHuge - 1) / kHuge * kHuge; }
};

}  // namespace recallcore
