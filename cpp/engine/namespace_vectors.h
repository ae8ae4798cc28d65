// Each namespace's vectors in contiguous arrays, for the exact path of recall.
//
// A query is filtered to one namespace. When the namespace is small enough to scan exactly, reading
// its f32 vectors out of the graph is a gather of rows scattered over the whole store (1.5 KB each at
// 384-d, each on its own page: a TLB miss and a DRAM miss per row, ~0.3-0.6 us measured). Here each
// namespace keeps two dense copies: int8 codes (a quarter of the bytes, streamed by the block kernel
// to rank the rows by estimate) and the f32 vectors, in the same order, from which the head of that
// ranking is re-scored exactly. Recall needs ~100 candidates for fusion but only the first few exact:
// deeper ranks feed reciprocal-rank fusion, where an estimate's order is as good as the exact one.
//
// A namespace's copies are built on its second search (from the caller's vectors), so namespaces never
// searched this way cost nothing, and kept current by the writers afterwards. They cost ~5 bytes per
// dimension per vector (1.9 KB at 384-d); a byte budget bounds them, the least recently searched
// namespaces dropped first. Threading: writers (put/remove/clear) run with the store's state lock
// held exclusively; searches run under the shared lock and may build a namespace concurrently with
// other searches (mu_ serialises the builds).
#pragma once

#include <bit>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/record.h"
#include "hnsw/index.h"
#include "simd/kernel_table.h"

namespace recallcore::engine {

// A query whose only per-row conditions are validity, archive and expiry (no session, kind, time or
// entity filter, the common case). The copies mirror those header fields, so such a query never
// touches the store's record table (scattered rows: a DRAM miss each).
struct PlainQuery {
  bool use = false;
  Visibility vis;
};

class NamespaceVectors {
 public:
  // `budget`: bytes of copies kept; beyond it the least recently searched namespaces are dropped
  // (rebuilt on their next search).
  NamespaceVectors(std::size_t dim, simd::Metric metric, std::size_t budget)
      : dim_(dim), metric_(metric), budget_(budget) {}

  // Fills the ids (ascending), vectors and headers of a namespace when its copies are built.
  using Source = std::function<void(std::vector<std::uint64_t>& ids, std::vector<float>& vecs,
                                    std::vector<RecordHeader>& headers)>;

  // The `k` nearest rows of namespace `ns` among those `filter` admits, nearest first. The first
  // `exact` carry the store's distances (as the vector index reports them): the `exact` + a margin
  // best int8 estimates re-scored from f32 (none when `exact` is 0). The rest follow in estimate order
  // with estimated distances (within ~1e-3 of a cosine), never below the last exact one. `filter` is asked only
  // about rows whose estimate would enter the current best `k`, and not at all for a `plain` query
  // (the copies' mirrored header fields decide). Returns false, doing nothing, on a
  // namespace's first request: copies are built from its second search on (a namespace searched
  // once, like the first query after a cold open, does not pay for building them).
  bool search(std::uint32_t ns, const float* query, std::size_t k, std::size_t exact, const hnsw::Filter& filter,
              const PlainQuery& plain, const Source& source, std::vector<hnsw::Hit>& out);

  // Writers (state lock held exclusively). A namespace not built yet ignores them: it reads the
  // current vectors when first built.
  void put(std::uint32_t ns, std::uint64_t id, const float* v, const RecordHeader& h);
  void update_header(std::uint32_t ns, std::uint64_t id, const RecordHeader& h);  // a header changed alone
  void remove(std::uint32_t ns, std::uint64_t id);
  void clear();

  // Calls fn(ns, id, f32 vector, mirrored header fields) for every live row held (for verify()).
  struct Mirror {
    double valid_from, valid_to, expires_at;
    bool archived;
  };
  void visit(const std::function<void(std::uint32_t, std::uint64_t, const float*, const Mirror&)>& fn) const;

  struct Usage {
    std::size_t namespaces = 0, bytes = 0, budget = 0, evictions = 0;
  };
  Usage usage() const;

 private:
  struct Block {
    std::vector<std::uint64_t> ids;  // ascending
    std::vector<std::int8_t> codes;  // ids.size() * dim
    std::vector<float> scales;       // value = scale * code
    std::vector<float> norms;        // |scale * code|^2, for l2 estimates from an integer dot
    std::vector<std::int32_t> sums;  // sum of each row's codes (halves the VNNI kernel's work)
    std::vector<float> vecs;         // ids.size() * dim, as written
    std::vector<Mirror> mirror;      // the header fields a plain query checks
    std::vector<std::uint8_t> live;  // kRemoved (they stay until compaction), kTimeless or kWindowed
    std::size_t dead = 0;
    std::size_t bytes = 0;       // as counted in bytes_
    std::uint64_t last_used = 0;  // clock_ at the last search
  };
  // An estimate and its row packed in one integer whose order is (estimate, row): selection and
  // sorting compare integers, with no branch on ties (they were half of a 1k-row search's time).
  struct Candidate {
    std::uint64_t key;
    static Candidate make(float approx, std::uint32_t pos) {
      const auto u = std::bit_cast<std::uint32_t>(approx);
      const std::uint32_t ordered = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // float order as unsigned
      return {(std::uint64_t(ordered) << 32) | pos};
    }
    float approx() const {
      const auto ordered = std::uint32_t(key >> 32);
      return std::bit_cast<float>((ordered & 0x80000000u) ? (ordered & 0x7FFFFFFFu) : ~ordered);
    }
    std::uint32_t pos() const { return std::uint32_t(key); }
    bool operator<(const Candidate& o) const { return key < o.key; }
  };
  // One row's codes and the per-row terms kept beside them.
  void encode(const float* v, std::int8_t* codes, float* scale, float* norm, std::int32_t* sum) const;
  void compact(Block& b) const;
  Block* find(std::uint32_t ns) const;  // caller holds mu_
  static std::size_t bytes_of(const Block& b);
  void resized(Block& b);                      // caller holds mu_
  void evict_beyond_budget(std::uint32_t keep_ns);  // caller holds mu_

  std::size_t dim_;
  simd::Metric metric_;
  std::size_t budget_;
  mutable std::mutex mu_;
  std::unordered_map<std::uint32_t, std::shared_ptr<Block>> blocks_;
  std::unordered_set<std::uint32_t> requested_;  // namespaces searched at least once
  std::size_t bytes_ = 0, evictions_ = 0;
  std::uint64_t clock_ = 0;
};

}  // namespace recallcore::engine
