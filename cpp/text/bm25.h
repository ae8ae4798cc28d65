// In-memory BM25 index, partitioned by namespace: each partition has its own document count, average
// length, document frequencies and postings, so tenants never influence each other's scores and a
// tenant is dropped in one call.
//
// Thread safety: `search`, `size`, `partition_size`, `contains` and `serialize` are const and touch
// no shared mutable state (per-query scratch is thread_local), so any number of them may run at once.
// `add`, `remove`, `drop_partition` and assignment need exclusive access: the caller (the memory
// store) serialises writers and guards them against readers with its own shared_mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace recallcore::text {

struct Bm25Params {
  float k1 = 1.2f;
  float b = 0.75f;
  // Throws InvalidArgument unless k1 >= 0 and 0 <= b <= 1 (and both finite).
  void validate() const;
};

struct LexHit {
  std::uint64_t id;
  float score;  // higher is better
};

class DocFilter {
 public:
  virtual ~DocFilter() = default;
  virtual bool allows(std::uint64_t id) const = 0;
};

// A filter over a sorted, de-duplicated copy of an allow-list (binary search per candidate).
class AllowListFilter final : public DocFilter {
 public:
  explicit AllowListFilter(std::vector<std::uint64_t> ids);
  bool allows(std::uint64_t id) const override;

 private:
  std::vector<std::uint64_t> ids_;
};

class Bm25Index {
 public:
  explicit Bm25Index(Bm25Params params = {}, TokenizerOptions tokenizer = {});

  // Indexes `text` under `id` in `partition`; an id already present (in any partition) is replaced.
  // Throws InvalidArgument on invalid UTF-8 (the index is then unchanged).
  void add(std::uint32_t partition, std::uint64_t id, std::string_view text);
  // Removes a document; false if the id is unknown.
  bool remove(std::uint64_t id);
  // Removes every document of a partition (no-op for an unknown partition).
  void drop_partition(std::uint32_t partition);

  // The k best documents of `partition` for `query`, best first; ties broken by smaller id. Each
  // distinct query term counts once. Documents the filter rejects are skipped during scoring.
  // Throws InvalidArgument on invalid UTF-8.
  std::vector<LexHit> search(std::uint32_t partition, std::string_view query, std::size_t k,
                             const DocFilter* filter = nullptr) const;

  std::size_t size() const noexcept { return where_.size(); }
  std::size_t partition_size(std::uint32_t partition) const noexcept;
  bool contains(std::uint64_t id) const noexcept { return where_.count(id) != 0; }
  std::vector<std::uint32_t> partitions() const;
  const Bm25Params& params() const noexcept { return params_; }
  const TokenizerOptions& tokenizer_options() const noexcept { return tokenizer_; }

  // A self-describing byte image: magic "RCBM25\r\n", format version, parameters, tokenizer options,
  // term dictionary, per-partition documents (term ids and frequencies), and a checksum (common/checksum.h).
  // Canonical: documents sorted by (partition, id), so equal indexes give equal bytes.
  std::string serialize() const;
  // Throws CorruptData on a wrong magic, version, size, checksum or inconsistent content.
  static Bm25Index deserialize(std::string_view bytes);

 private:
  struct Posting {
    std::uint32_t slot;
    std::uint32_t tf;
  };
  struct TermTf {
    std::uint32_t term;
    std::uint32_t tf;
  };
  struct Partition {
    std::unordered_map<std::uint32_t, std::vector<Posting>> postings;  // term id -> postings
    std::vector<std::uint64_t> slot_id;                                 // slot -> external id
    std::vector<std::uint32_t> slot_len;                                // slot -> document length
    std::vector<std::vector<TermTf>> slot_terms;                        // slot -> its terms (for removal)
    std::vector<std::uint8_t> slot_live;                                // slot -> 1 while it holds a document
    std::vector<std::uint32_t> free_slots;
    std::size_t docs = 0;
    std::uint64_t total_len = 0;
  };
  struct Location {
    std::uint32_t partition;
    std::uint32_t slot;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  std::uint32_t intern(std::string_view term);
  void insert_doc(std::uint32_t partition, std::uint64_t id, std::vector<TermTf> terms);
  void erase_doc(Partition& p, std::uint32_t slot);

  Bm25Params params_;
  TokenizerOptions tokenizer_;
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> term_ids_;
  std::vector<std::string> terms_;  // term id -> term (kept after last use: ids stay stable)
  std::unordered_map<std::uint32_t, Partition> partitions_;
  std::unordered_map<std::uint64_t, Location> where_;
};

}  // namespace recallcore::text
