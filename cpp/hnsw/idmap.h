// External id -> slot map: open addressing with linear probing and backward-shift deletion (no
// tombstones, so lookups never degrade after many removals). About 24 bytes per entry at the maximum
// load of 2/3, and one or two cache lines per lookup, which matters for allow-list filters that resolve
// thousands of ids per query.
//
// The table is a plain array of 16-byte entries in a Region, so a snapshot can store it as it is and
// a load can serve it from the file mapping (persistence.h, format 3): no 100k inserts into fresh
// memory at open; the first write to a page copies that page (the mapping is private).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "hnsw/region.h"

namespace recallcore::hnsw {

class IdMap {
 public:
  static constexpr std::uint32_t kMissing = 0xFFFFFFFFu;

  struct Entry {
    std::uint64_t id = 0;
    std::uint32_t slot = kMissing;
    std::uint32_t pad = 0;  // explicit, so a saved table holds no indeterminate bytes
  };
  static_assert(sizeof(Entry) == 16, "saved in snapshots (hnsw/persistence.h)");

  IdMap() = default;
  IdMap(IdMap&& o) noexcept { *this = std::move(o); }
  IdMap& operator=(IdMap&& o) noexcept {
    if (this == &o) return *this;
    table_ = std::move(o.table_);
    slots_ = std::exchange(o.slots_, 0);
    mask_ = std::exchange(o.mask_, 0);
    size_ = std::exchange(o.size_, 0);
    o.table_.reset();
    return *this;
  }

  std::size_t size() const { return size_; }
  // Owned bytes, or the resident part of a mapped table.
  std::size_t bytes() const { return table_.resident_bytes(); }
  // The table as saved: slots() entries (0 or a power of two), `size()` of them in use.
  const Entry* entries() const { return data(); }
  std::size_t slots() const { return slots_; }
  // Adopts a saved table (a view of a file mapping, or owned bytes) holding `size` ids. The caller
  // has verified its bytes (checksum) and that every used entry's slot is in range.
  static IdMap adopt(Region table, std::size_t slots, std::size_t size) {
    IdMap m;
    m.table_ = std::move(table);
    m.slots_ = slots;
    m.mask_ = slots == 0 ? 0 : slots - 1;
    m.size_ = size;
    return m;
  }

  std::uint32_t find(std::uint64_t id) const {
    if (slots_ == 0) return kMissing;
    const Entry* entries = data();
    for (std::size_t i = home(id);; i = (i + 1) & mask_) {
      const Entry& e = entries[i];
      if (e.slot == kMissing) return kMissing;
      if (e.id == id) return e.slot;
    }
  }

  // Fetches the home bucket of id into cache, so a batch of lookups has its misses in flight together.
  void prefetch(std::uint64_t id) const {
    if (slots_ != 0) __builtin_prefetch(data() + home(id), 0, 3);
  }

  // Inserts or overwrites.
  void put(std::uint64_t id, std::uint32_t slot) {
    if ((size_ + 1) * 3 > slots_ * 2) rehash(slots_ == 0 ? 16 : slots_ * 2);
    Entry* entries = data();
    for (std::size_t i = home(id);; i = (i + 1) & mask_) {
      Entry& e = entries[i];
      if (e.slot == kMissing) {
        e = Entry{id, slot, 0};
        ++size_;
        return;
      }
      if (e.id == id) {
        e.slot = slot;
        return;
      }
    }
  }

  bool erase(std::uint64_t id) {
    if (slots_ == 0) return false;
    Entry* entries = data();
    std::size_t i = home(id);
    for (;; i = (i + 1) & mask_) {
      if (entries[i].slot == kMissing) return false;
      if (entries[i].id == id) break;
    }
    // Backward shift: pull later members of the probe run into the hole when the hole lies on their
    // path from their home position.
    std::size_t hole = i;
    for (std::size_t j = (hole + 1) & mask_; entries[j].slot != kMissing; j = (j + 1) & mask_) {
      const std::size_t h = home(entries[j].id);
      const bool movable = (hole <= j) ? (h <= hole || h > j) : (h <= hole && h > j);
      if (movable) {
        entries[hole] = entries[j];
        hole = j;
      }
    }
    entries[hole] = Entry{};
    --size_;
    return true;
  }

  void clear() { *this = IdMap(); }
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap * 2 < n * 3) cap *= 2;
    if (cap > slots_) rehash(cap);
  }

 private:
  Entry* data() const { return reinterpret_cast<Entry*>(table_.data()); }
  std::size_t home(std::uint64_t id) const {
    // Fibonacci hashing: sequential ids spread over the table.
    return std::size_t((id * 0x9E3779B97F4A7C15ull) >> 32) & mask_;
  }
  void rehash(std::size_t cap) {
    Region old = std::move(table_);
    const Entry* from = reinterpret_cast<const Entry*>(old.data());
    const std::size_t old_slots = slots_;
    table_.reset();
    table_.grow(cap * sizeof(Entry), 0);
    Entry* to = data();
    for (std::size_t i = 0; i < cap; ++i) to[i] = Entry{};
    slots_ = cap;
    mask_ = cap - 1;
    size_ = 0;
    for (std::size_t i = 0; i < old_slots; ++i)
      if (from[i].slot != kMissing) put(from[i].id, from[i].slot);
  }

  Region table_;  // slots_ entries
  std::size_t slots_ = 0;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace recallcore::hnsw
