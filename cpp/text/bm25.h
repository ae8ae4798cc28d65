// In-memory BM25 index, partitioned by namespace: each partition has its own document count, average
// length, document frequencies and postings, so tenants never influence each other's scores and a
// tenant is dropped in one call.
//
// Thread safety: `search`, `size`, `partition_size`, `partitions`, `contains` and `serialize` are const
// and may run at once from any number of threads (per-query scratch is thread_local). An index opened
// from an image (`open`) decodes a partition the first time one of them needs it; that decode is
// serialised by the index's own mutexes, so it is safe under the caller's shared lock. `add`,
// `remove`, `drop_partition` and assignment need exclusive access: the caller (the memory store)
// serialises writers and guards them against readers with its own shared_mutex.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
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
  // Removes a document; false if the id is unknown. `hint`, the partition the caller believes holds
  // the id, is looked at first: an opened index then decodes no other partition to find it.
  bool remove(std::uint64_t id, std::optional<std::uint32_t> hint = std::nullopt);
  // Removes every document of a partition (no-op for an unknown partition).
  void drop_partition(std::uint32_t partition);

  // The k best documents of `partition` for `query`, best first; ties broken by smaller id. Each
  // distinct query term counts once. Documents the filter rejects are skipped during scoring.
  // Throws InvalidArgument on invalid UTF-8.
  std::vector<LexHit> search(std::uint32_t partition, std::string_view query, std::size_t k,
                             const DocFilter* filter = nullptr) const;

  std::size_t size() const;
  std::size_t partition_size(std::uint32_t partition) const;
  bool contains(std::uint64_t id) const;
  std::vector<std::uint32_t> partitions() const;
  const Bm25Params& params() const noexcept { return params_; }
  const TokenizerOptions& tokenizer_options() const noexcept { return tokenizer_; }

  // A self-describing byte image (format 3): a header (magic "RCBM25\r\n", format version,
  // parameters, tokenizer options), a directory of partitions (id, documents, id range, offset,
  // length, checksum) with its own checksum, then one self-contained block per partition: its term
  // dictionary (sorted) and its documents sorted by id (term ids and frequencies). Canonical: equal
  // indexes give equal bytes. Checksums: common/checksum.h.
  std::string serialize() const;
  // Reads everything and verifies every checksum; throws CorruptData on a wrong magic, version, size,
  // checksum or inconsistent content.
  static Bm25Index deserialize(std::string_view bytes);

  // Receives the documents of a partition whose block is unusable: the caller calls `add(id, text)`
  // for each document the partition should hold (from its source of truth).
  using AddDoc = std::function<void(std::uint64_t id, std::string_view text)>;
  using Rebuild = std::function<void(std::uint32_t partition, const AddDoc& add)>;
  // Verifies only the header and the directory (throws CorruptData) and keeps `image` (alive through
  // `owner`) to decode each partition the first time it is used, after checking its checksum. A
  // block that fails is rebuilt through `rebuild` (with none, the call that needed it throws
  // CorruptData). A cold open thus costs O(partitions), and a query decodes only its partition.
  static Bm25Index open(std::shared_ptr<const void> owner, std::string_view image, Rebuild rebuild = {});

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

  // A partition of an opened image not decoded yet. The directory is fixed at open (entries are
  // never added or moved), so readers may look entries up while another thread decodes one.
  struct Undecoded {
    std::uint32_t partition = 0, docs = 0;
    std::uint64_t min_id = 0, max_id = 0, offset = 0, length = 0, checksum = 0;
    mutable std::atomic<bool> pending{false};  // true until decoded, rebuilt or dropped
  };
  struct Lazy {
    std::shared_ptr<const void> owner;
    std::string_view image;
    std::unique_ptr<Undecoded[]> dir;  // sorted by partition
    std::size_t n = 0;
    Rebuild rebuild;
    std::mutex load_mu;                // one decode at a time
    mutable std::shared_mutex dict_mu;  // term_ids_/terms_/where_/pending_docs while decodes may run
    std::size_t pending_docs = 0;       // documents in pending partitions
    const Undecoded* find(std::uint32_t partition) const;
  };

  std::uint32_t intern(std::string_view term);
  void insert_doc(std::uint32_t partition, std::uint64_t id, std::vector<TermTf> terms);
  void erase_doc(Partition& p, std::uint32_t slot);
  // Removes `id` from wherever where_ says it is (if anywhere); an emptied partition is dropped unless
  // !drop_empty.
  void erase_id(std::uint64_t id, bool drop_empty = true);
  std::vector<TermTf> term_counts(std::string_view text);
  // Decodes (or rebuilds) a pending partition; no-op when it is not pending. Const because readers
  // trigger it: what it changes is guarded by lazy_'s mutexes and invisible until it is done.
  void decode(const Undecoded& e) const;
  void decode_locked(const Undecoded& e);
  void decode_all() const;
  void ensure(std::uint32_t partition) const {
    if (lazy_)
      if (const Undecoded* e = lazy_->find(partition); e && e->pending.load(std::memory_order_acquire)) decode(*e);
  }
  // Decodes pending partitions that may hold `id` (by their id range), `hint` first, until found.
  void locate(std::uint64_t id, std::optional<std::uint32_t> hint) const;
  void encode_partition(std::string& out, const Partition& p) const;

  Bm25Params params_;
  TokenizerOptions tokenizer_;
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> term_ids_;
  std::vector<std::string> terms_;  // term id -> term (kept after last use: ids stay stable)
  // Pending partitions of an opened image have an (empty) entry here from open on, so decoding one
  // never changes the map's structure under a concurrent reader.
  std::unordered_map<std::uint32_t, Partition> partitions_;
  std::unordered_map<std::uint64_t, Location> where_;
  std::unique_ptr<Lazy> lazy_;  // null unless opened from an image
};

}  // namespace recallcore::text
