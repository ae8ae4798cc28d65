// The store's record-header table (one row per record id), kept in a memory mapping of its own so
// that a cold open need not copy it: loaded from a snapshot, the table is a private (copy-on-write)
// mapping of the snapshot file whose rows section is the table's image, followed by anonymous address
// space to grow into. A row written after the open copies its page; nothing is written to the file
// (snapshots are replaced by rename, never rewritten, so the mapped file never changes under it).
//
// Built in memory (from LMDB), the table is an anonymous mapping advised to use transparent huge
// pages: filling a 100k-row table then takes a handful of page faults instead of thousands (measured:
// most of that fill was first-touch faults of 4 KiB pages).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace recallcore::engine {

template <class T>
class MappedTable {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "rows are moved and saved as bytes");

 public:
  MappedTable() = default;
  ~MappedTable() { release(); }
  MappedTable(const MappedTable&) = delete;
  MappedTable& operator=(const MappedTable&) = delete;
  MappedTable(MappedTable&& o) noexcept { *this = std::move(o); }
  MappedTable& operator=(MappedTable&& o) noexcept {
    if (this != &o) {
      release();
      base_ = std::exchange(o.base_, nullptr);
      mapped_ = std::exchange(o.mapped_, 0);
      rows_ = std::exchange(o.rows_, nullptr);
      size_ = std::exchange(o.size_, 0);
      cap_ = std::exchange(o.cap_, 0);
    }
    return *this;
  }

  // Serves the `n` rows stored at byte `offset` (a multiple of alignof(T)) of the open file `fd`,
  // `file_bytes` long, in place. Returns an empty table when the file cannot be mapped. Until the
  // table is first resized, file_image() is the whole file.
  static MappedTable map_file(int fd, std::size_t file_bytes, std::size_t offset, std::size_t n) {
    MappedTable t;
    if (offset % alignof(T) != 0 || offset + n * sizeof(T) > file_bytes) return t;
    const std::size_t cap = n + n / 2 + 1024;  // the first resize after an open stays in place
    const std::size_t bytes = round_up(std::max(offset + cap * sizeof(T), file_bytes), page());
    // Address space for the file and the growth after it; pages past the file are anonymous zeroes.
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return t;
    if (file_bytes > 0 &&
        ::mmap(p, file_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
      ::munmap(p, bytes);
      return t;
    }
    t.base_ = static_cast<std::byte*>(p);
    t.mapped_ = bytes;
    t.rows_ = reinterpret_cast<T*>(t.base_ + offset);
    t.size_ = n;
    t.cap_ = cap;
    return t;
  }
  const char* file_image() const { return reinterpret_cast<const char*>(base_); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](std::size_t i) { return rows_[i]; }
  const T& operator[](std::size_t i) const { return rows_[i]; }
  // Iteration as on the std::vector this table replaced, for code written against that.
  T* begin() { return rows_; }
  T* end() { return rows_ + size_; }
  const T* begin() const { return rows_; }
  const T* end() const { return rows_ + size_; }

  // New rows are T{}.
  void resize(std::size_t n) {
    if (n > cap_) grow(std::max(n, cap_ + cap_ / 2));
    for (std::size_t i = size_; i < n; ++i) new (rows_ + i) T{};
    size_ = n;
  }
  void clear() { release(); }

 private:
  static std::size_t page() { return std::size_t(::sysconf(_SC_PAGESIZE)); }
  static std::size_t round_up(std::size_t x, std::size_t to) { return (x + to - 1) / to * to; }

  void grow(std::size_t cap) {
    constexpr std::size_t kHuge = std::size_t(2) << 20;
    if (cap > (std::size_t(-1) - kHuge) / sizeof(T)) throw std::bad_array_new_length();
    // Small tables stay on small pages: a huge page would make a 20-row store cost 2 MiB.
    const bool huge = cap * sizeof(T) >= kHuge;
    const std::size_t bytes = round_up(cap * sizeof(T), huge ? kHuge : page());
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    if (huge) ::madvise(p, bytes, MADV_HUGEPAGE);  // advisory: without THP it is an ordinary mapping
    T* rows = static_cast<T*>(p);
    if (size_ > 0) std::memcpy(static_cast<void*>(rows), rows_, size_ * sizeof(T));
    const std::size_t size = size_;
    release();
    base_ = static_cast<std::byte*>(p);
    mapped_ = bytes;
    rows_ = rows;
    size_ = size;
    cap_ = cap;
  }
  void release() {
    if (base_ != nullptr) ::munmap(base_, mapped_);
    base_ = nullptr;
    mapped_ = 0;
    rows_ = nullptr;
    size_ = cap_ = 0;
  }

  std::byte* base_ = nullptr;  // the mapping
  std::size_t mapped_ = 0;     // its bytes
  T* rows_ = nullptr;
  std::size_t size_ = 0, cap_ = 0;
};

}  // namespace recallcore::engine
