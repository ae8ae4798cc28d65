// External id -> slot map: open addressing with linear probing and backward-shift deletion (no
// tombstones, so lookups never degrade after many removals). About 24 bytes per entry at the maximum
// load of 2/3, and one or two cache lines per lookup, which matters for allow-list filters that resolve
// thousands of ids per query.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace recallcore::hnsw {

class IdMap {
 public:
  static constexpr std::uint32_t kMissing = 0xFFFFFFFFu;

  std::size_t size() const { return size_; }
  std::size_t bytes() const { return entries_.capacity() * sizeof(Entry); }

  std::uint32_t find(std::uint64_t id) const {
    if (entries_.empty()) return kMissing;
    for (std::size_t i = home(id);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.slot == kMissing) return kMissing;
      if (e.id == id) return e.slot;
    }
  }

  // Fetches the home bucket of id into cache, so a batch of lookups has its misses in flight together.
  void prefetch(std::uint64_t id) const {
    if (!entries_.empty()) __builtin_prefetch(&entries_[home(id)], 0, 3);
  }

  // Inserts or overwrites.
  void put(std::uint64_t id, std::uint32_t slot) {
    if ((size_ + 1) * 3 > entries_.size() * 2) rehash(entries_.empty() ? 16 : entries_.size() * 2);
    for (std::size_t i = home(id);; i = (i + 1) & mask_) {
      Entry& e = entries_[i];
      if (e.slot == kMissing) {
        e = Entry{id, slot};
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
    if (entries_.empty()) return false;
    std::size_t i = home(id);
    for (;; i = (i + 1) & mask_) {
      if (entries_[i].slot == kMissing) return false;
      if (entries_[i].id == id) break;
    }
    // Backward shift: pull later members of the probe run into the hole when the hole lies on their
    // path from their home position.
    std::size_t hole = i;
    for (std::size_t j = (hole + 1) & mask_; entries_[j].slot != kMissing; j = (j + 1) & mask_) {
      const std::size_t h = home(entries_[j].id);
      const bool movable = (hole <= j) ? (h <= hole || h > j) : (h <= hole && h > j);
      if (movable) {
        entries_[hole] = entries_[j];
        hole = j;
      }
    }
    entries_[hole] = Entry{};
    --size_;
    return true;
  }

  void clear() {
    entries_.clear();
    size_ = 0;
    mask_ = 0;
  }
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap * 2 < n * 3) cap *= 2;
    if (cap > entries_.size()) rehash(cap);
  }

 private:
  struct Entry {
    std::uint64_t id = 0;
    std::uint32_t slot = kMissing;
  };
  std::size_t home(std::uint64_t id) const {
    // Fibonacci hashing: sequential ids spread over the table.
    return std::size_t((id * 0x9E3779B97F4A7C15ull) >> 32) & mask_;
  }
  void rehash(std::size_t cap) {
    std::vector<Entry> old;
    old.swap(entries_);
    entries_.assign(cap, Entry{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Entry& e : old)
      if (e.slot != kMissing) put(e.id, e.slot);
  }

  std::vector<Entry> entries_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace recallcore::hnsw
