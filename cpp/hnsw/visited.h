// Visited set for one graph walk: one 16-bit tag per slot and an epoch that advances per walk, so
// "clearing" is one increment instead of a memset of the whole array (hnswlib's VisitedList idea).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace recallcore::hnsw {

class VisitedList {
 public:
  // Starts a new walk over `slots` slots. Amortised O(1): the tags are zeroed only on epoch wrap-around
  // (every 65,535 walks) or when the index has grown since the last walk.
  void begin(std::size_t slots) {
    if (tags_.size() < slots) tags_.resize(slots + slots / 4 + 64, 0);
    if (++epoch_ == 0) {
      std::fill(tags_.begin(), tags_.end(), std::uint16_t(0));
      epoch_ = 1;
    }
  }
  // True when the slot was already visited in this walk; marks it visited otherwise.
  bool test_and_set(std::uint32_t slot) {
    std::uint16_t& t = tags_[slot];
    if (t == epoch_) return true;
    t = epoch_;
    return false;
  }
  const void* address(std::uint32_t slot) const { return &tags_[slot]; }
  std::size_t bytes() const { return tags_.size() * sizeof(std::uint16_t); }

 private:
  std::vector<std::uint16_t> tags_;
  std::uint16_t epoch_ = 0;
};

}  // namespace recallcore::hnsw
