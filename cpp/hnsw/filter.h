// Search filters. A filter restricts results to allowed external ids and is applied *during* the graph
// walk (disallowed nodes are still traversed, they just never enter the result set), so recall does not
// collapse the way post-filtering does. Filters that can enumerate their allowed ids (allow-lists, masks)
// let the index choose an exact scan when they admit few items (see Index::search).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace recallcore::hnsw {

class Filter {
 public:
  virtual ~Filter() = default;
  virtual bool allows(std::uint64_t id) const = 0;
  // A hint that allows(id) is coming: a filter backed by a table scattered in memory fetches the row
  // now, so a caller checking a batch of ids has their cache misses in flight together.
  virtual void prefetch(std::uint64_t id) const { (void)id; }
  // Filters that know their allowed ids return them (count in *n); others return nullptr. The index
  // uses this to pick an exact scan for small sets instead of a long filtered walk.
  virtual const std::uint64_t* allow_list(std::size_t* n) const {
    (void)n;
    return nullptr;
  }
};

// An explicit allow-list of ids. Non-owning (the array must outlive the search) and not copied or
// sorted, so building one per query is free: the index resolves the list to slots through its id map
// and never calls allows() on it (which is a linear scan, for completeness only).
class IdListFilter final : public Filter {
 public:
  IdListFilter(const std::uint64_t* ids, std::size_t n) : ids_(ids), n_(n) {}
  bool allows(std::uint64_t id) const override { return std::find(ids_, ids_ + n_, id) != ids_ + n_; }
  const std::uint64_t* allow_list(std::size_t* n) const override {
    *n = n_;
    return ids_;
  }

 private:
  const std::uint64_t* ids_;
  std::size_t n_;
};

// A boolean mask indexed by id: id is allowed when id < n and mask[id] != 0. Non-owning: the mask must
// outlive the search. The allowed ids are enumerated once, on construction, so the index can plan.
class IdMaskFilter final : public Filter {
 public:
  IdMaskFilter(const std::uint8_t* mask, std::size_t n) : mask_(mask), n_(n) {
    // Skips zero bytes eight at a time: a selective mask over 100k ids is enumerated in a few us.
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, mask + i, 8);
      if (w == 0) continue;
      for (std::size_t j = i; j < i + 8; ++j)
        if (mask[j]) allowed_.push_back(j);
    }
    for (; i < n; ++i)
      if (mask[i]) allowed_.push_back(i);
  }
  bool allows(std::uint64_t id) const override { return id < n_ && mask_[id] != 0; }
  const std::uint64_t* allow_list(std::size_t* n) const override {
    *n = allowed_.size();
    return allowed_.data();
  }

 private:
  const std::uint8_t* mask_;
  std::size_t n_;
  std::vector<std::uint64_t> allowed_;
};

}  // namespace recallcore::hnsw
